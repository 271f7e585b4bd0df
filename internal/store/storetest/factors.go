package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// factorTests are the conformance cases of second factors (store/factors.go).
var factorTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"FactorEnrolListReplace", testFactorEnrol},
	{"FactorCounterOnlyForward", testFactorCounter},
	{"RecoveryCodeSingleUse", testRecoveryCodes},
	{"FactorDeleteAndCascade", testFactorDelete},
	{"LoginSessionAMR", testLoginSessionAMR},
}

// factorBackendTests need two instances on one database.
var factorBackendTests = []struct {
	name string
	fn   func(t *testing.T, b Backend)
}{
	{"FactorCounterConcurrentOneWinnerAcrossInstances", testFactorCounterConcurrent},
}

func enrol(t *testing.T, st *store.Store, id, userID string, recovery []string) {
	t.Helper()
	if err := st.EnrollFactor(ctxT(t), &store.Factor{ID: id, UserID: userID, Kind: store.FactorTOTP, Secret: []byte("sealed-" + id), Counter: 100}, recovery); err != nil {
		t.Fatalf("enrol %s: %v", id, err)
	}
}

func testFactorEnrol(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "f-u1")
	if fs, err := st.ListFactors(ctx, "f-u1"); err != nil || fs == nil || len(fs) != 0 {
		t.Fatalf("no factors: %v %v", fs, err)
	}
	enrol(t, st, "f1", "f-u1", []string{"h1", "h2"})
	fs, err := st.ListFactors(ctx, "f-u1")
	if err != nil || len(fs) != 1 || fs[0].ID != "f1" || string(fs[0].Secret) != "sealed-f1" || fs[0].Counter != 100 || fs[0].CreatedAt.IsZero() || fs[0].LastUsedAt != nil {
		t.Fatalf("listed %+v %v", fs, err)
	}
	// A second TOTP replaces the first; nil recovery codes keep the old.
	enrol(t, st, "f2", "f-u1", nil)
	fs, _ = st.ListFactors(ctx, "f-u1")
	if len(fs) != 1 || fs[0].ID != "f2" {
		t.Errorf("after re-enrolment %+v, want only f2", fs)
	}
	if n, err := st.CountRecoveryCodes(ctx, "f-u1"); err != nil || n != 2 {
		t.Errorf("recovery codes %d %v, want 2", n, err)
	}
	if err := st.EnrollFactor(ctx, &store.Factor{ID: "f3", UserID: "no-such-user", Kind: store.FactorTOTP}, nil); !errors.Is(err, store.ErrMissingReference) {
		t.Errorf("enrol for a missing user: %v, want ErrMissingReference", err)
	}
}

func testFactorCounter(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "f-u2")
	enrol(t, st, "fc", "f-u2", nil)
	if err := st.AdvanceFactorCounter(ctx, "fc", 101); err != nil {
		t.Fatalf("advance: %v", err)
	}
	for _, c := range []int64{101, 100, 50} {
		if err := st.AdvanceFactorCounter(ctx, "fc", c); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("counter %d after 101: %v, want ErrNotFound", c, err)
		}
	}
	if err := st.AdvanceFactorCounter(ctx, "no-such-factor", 1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown factor: %v", err)
	}
	fs, _ := st.ListFactors(ctx, "f-u2")
	if len(fs) != 1 || fs[0].Counter != 101 || fs[0].LastUsedAt == nil {
		t.Errorf("after use %+v", fs)
	}
}

func testRecoveryCodes(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "f-u3")
	mustUser(t, st, "f-u4")
	enrol(t, st, "fr", "f-u3", []string{"a", "b", "c"})
	if err := st.ConsumeRecoveryCode(ctx, "f-u4", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another person's code: %v, want ErrNotFound", err)
	}
	if err := st.ConsumeRecoveryCode(ctx, "f-u3", "a"); err != nil {
		t.Fatalf("use: %v", err)
	}
	if err := st.ConsumeRecoveryCode(ctx, "f-u3", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second use: %v, want ErrNotFound", err)
	}
	if n, _ := st.CountRecoveryCodes(ctx, "f-u3"); n != 2 {
		t.Errorf("left %d, want 2", n)
	}
	if err := st.ReplaceRecoveryCodes(ctx, "f-u3", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if err := st.ConsumeRecoveryCode(ctx, "f-u3", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("replaced code still works: %v", err)
	}
	if rows := RawColumn(t, st, "recovery_codes", "code_hash"); len(rows) != 1 || rows[0] != "x" {
		t.Errorf("rows %v", rows)
	}
}

func testFactorDelete(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "f-u5")
	mustUser(t, st, "f-u6")
	enrol(t, st, "fd", "f-u5", []string{"a"})
	if err := st.DeleteFactors(ctx, "f-u6", "fd"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete another person's factor: %v, want ErrNotFound", err)
	}
	if err := st.DeleteFactors(ctx, "f-u5", "fd"); err != nil {
		t.Fatal(err)
	}
	// The last factor gone, its recovery codes go too.
	if n, _ := st.CountRecoveryCodes(ctx, "f-u5"); n != 0 {
		t.Errorf("recovery codes left without a factor: %d", n)
	}
	if err := st.DeleteFactors(ctx, "f-u5", ""); err != nil {
		t.Errorf("delete all of none: %v", err)
	}
	enrol(t, st, "fe", "f-u6", []string{"b"})
	if err := st.DeleteUser(ctx, "f-u6", st.Now()); err != nil {
		t.Fatal(err)
	}
	if rows := RawColumn(t, st, "user_factors", "id"); len(rows) != 0 {
		t.Errorf("factors left after the user was deleted: %v", rows)
	}
}

func testLoginSessionAMR(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "f-u7")
	now := st.Now()
	ls := &store.LoginSession{UserID: "f-u7", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateLoginSession(ctx, "cookie-amr", ls); err != nil {
		t.Fatal(err)
	}
	got, err := st.TouchLoginSession(ctx, "cookie-amr", time.Hour)
	if err != nil || got.AMR != "pwd" || got.MFATime != nil {
		t.Fatalf("new session %+v %v, want amr pwd", got, err)
	}
	if err := st.RaiseLoginSession(ctx, ls.ID, []string{"pwd", "otp", "mfa"}); err != nil {
		t.Fatal(err)
	}
	got, _ = st.TouchLoginSession(ctx, "cookie-amr", time.Hour)
	if got.AMR != "pwd otp mfa" || got.MFATime == nil {
		t.Errorf("raised session %+v", got)
	}
	if err := st.RaiseLoginSession(ctx, "gone", []string{"pwd"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("raise a missing session: %v", err)
	}
}

// Two instances accept one time step at once: exactly one wins.
func testFactorCounterConcurrent(t *testing.T, b Backend) {
	url := b.URL(t)
	a, c := Open(t, url, store.Options{}), Open(t, url, store.Options{})
	mustUser(t, a, "f-u8")
	enrol(t, a, "fp", "f-u8", nil)
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		st := a
		if i%2 == 1 {
			st = c
		}
		wg.Go(func() {
			err := st.AdvanceFactorCounter(ctxT(t), "fp", 101)
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("advance: %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d winners, want 1", won.Load())
	}
}
