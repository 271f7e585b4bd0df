package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// passkeyTests are the conformance cases of passkeys (store/passkeys.go).
var passkeyTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"PasskeyEnrolFindByCredentialID", testPasskeyFind},
	{"PasskeyCredentialIDUnique", testPasskeyUnique},
	{"PasskeyCounterRules", testPasskeyCounter},
	{"WebAuthnChallengeSingleUse", testChallengeOnce},
}

// passkeyBackendTests need their own clock or two instances.
var passkeyBackendTests = []struct {
	name string
	fn   func(t *testing.T, b Backend)
}{
	{"WebAuthnChallengeExpires", testChallengeExpiry},
	{"WebAuthnChallengeConcurrentOneWinnerAcrossInstances", testChallengeConcurrent},
}

func enrolPasskey(t *testing.T, st *store.Store, id, userID string, credID []byte, counter int64) {
	t.Helper()
	f := &store.Factor{ID: id, UserID: userID, Kind: store.FactorWebAuthn, CredentialID: credID, PublicKey: []byte("cose-" + id),
		AAGUID: make([]byte, 16), Transports: "internal hybrid", AttestationFormat: "none", BackupEligible: true, Name: "Laptop " + id, Counter: counter}
	if err := st.EnrollFactor(ctxT(t), f, nil); err != nil {
		t.Fatalf("enrol passkey %s: %v", id, err)
	}
}

func testPasskeyFind(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "pk-u1")
	enrol(t, st, "pk-totp", "pk-u1", []string{"h1"})
	enrolPasskey(t, st, "pk1", "pk-u1", []byte("cred-1"), 0)
	enrolPasskey(t, st, "pk2", "pk-u1", []byte("cred-2"), 0)
	// Passkeys are many per person, beside the TOTP; enrolling one keeps
	// the recovery codes (nil).
	fs, err := st.ListFactors(ctx, "pk-u1")
	if err != nil || len(fs) != 3 {
		t.Fatalf("listed %+v %v, want totp and two passkeys", fs, err)
	}
	if n, _ := st.CountRecoveryCodes(ctx, "pk-u1"); n != 1 {
		t.Errorf("recovery codes %d, want 1", n)
	}
	f, err := st.FindFactorByCredentialID(ctx, []byte("cred-2"))
	if err != nil || f.ID != "pk2" || f.UserID != "pk-u1" || string(f.PublicKey) != "cose-pk2" || f.Name != "Laptop pk2" ||
		!f.BackupEligible || f.Transports != "internal hybrid" || len(f.AAGUID) != 16 || f.AttestationFormat != "none" {
		t.Fatalf("found %+v %v", f, err)
	}
	if _, err := st.FindFactorByCredentialID(ctx, []byte("cred-x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown credential: %v, want ErrNotFound", err)
	}
	// Removing one passkey leaves the rest; removing them all (and the
	// TOTP) takes the recovery codes with them.
	if err := st.DeleteFactors(ctx, "pk-u1", "pk1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.FindFactorByCredentialID(ctx, []byte("cred-1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removed passkey still found: %v", err)
	}
	if err := st.DeleteFactors(ctx, "pk-u1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.FindFactorByCredentialID(ctx, []byte("cred-2")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reset left a passkey: %v", err)
	}
}

func testPasskeyUnique(t *testing.T, st *store.Store) {
	mustUser(t, st, "pku-a")
	mustUser(t, st, "pku-b")
	enrolPasskey(t, st, "pku1", "pku-a", []byte("same-cred"), 0)
	f := &store.Factor{ID: "pku2", UserID: "pku-b", Kind: store.FactorWebAuthn, CredentialID: []byte("same-cred"), PublicKey: []byte("k")}
	if err := st.EnrollFactor(ctxT(t), f, nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("a credential id enrolled twice: %v, want ErrAlreadyExists", err)
	}
}

func testPasskeyCounter(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustUser(t, st, "pkc-u")
	enrolPasskey(t, st, "pkc-zero", "pkc-u", []byte("c-zero"), 0)
	enrolPasskey(t, st, "pkc-n", "pkc-u", []byte("c-n"), 5)
	// An authenticator without a counter sends 0 every time: allowed
	// while the stored one is 0.
	for range 2 {
		if err := st.UsePasskey(ctx, "pkc-zero", 0, true); err != nil {
			t.Fatalf("zero counter: %v", err)
		}
	}
	f, _ := st.FindFactorByCredentialID(ctx, []byte("c-zero"))
	if f.LastUsedAt == nil || !f.BackupState {
		t.Errorf("use not recorded: %+v", f)
	}
	for _, c := range []struct {
		n    uint32
		want error
	}{
		{5, store.ErrNotFound}, // equal: a clone, or a replay
		{4, store.ErrNotFound}, // backwards
		{0, store.ErrNotFound}, // a counter that stopped
		{6, nil},
		{6, store.ErrNotFound},
		{100, nil},
	} {
		if err := st.UsePasskey(ctx, "pkc-n", c.n, false); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("counter %d: %v, want %v", c.n, err, c.want)
		}
	}
	f, _ = st.FindFactorByCredentialID(ctx, []byte("c-n"))
	if f.Counter != 100 {
		t.Errorf("counter %d, want 100", f.Counter)
	}
	// Only passkeys: a TOTP factor's counter is not a passkey's.
	enrol(t, st, "pkc-totp", "pkc-u", nil)
	if err := st.UsePasskey(ctx, "pkc-totp", 1000, false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UsePasskey on a TOTP factor: %v", err)
	}
}

func testChallengeOnce(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	c := &store.WebAuthnChallenge{ID: "ch-1", Purpose: "login", Data: `{"challenge":"x"}`, ExpiresAt: time.Now().Add(time.Minute)}
	if err := st.SaveWebAuthnChallenge(ctx, c); err != nil {
		t.Fatal(err)
	}
	// Asking again replaces the browser's challenge.
	c2 := &store.WebAuthnChallenge{ID: "ch-1", Purpose: "second-factor", UserID: "u", Data: `{"challenge":"y"}`, ExpiresAt: time.Now().Add(time.Minute)}
	if err := st.SaveWebAuthnChallenge(ctx, c2); err != nil {
		t.Fatal(err)
	}
	got, err := st.TakeWebAuthnChallenge(ctx, "ch-1")
	if err != nil || got.Purpose != "second-factor" || got.UserID != "u" || got.Data != `{"challenge":"y"}` {
		t.Fatalf("took %+v %v", got, err)
	}
	if _, err := st.TakeWebAuthnChallenge(ctx, "ch-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second take: %v, want ErrNotFound", err)
	}
	if _, err := st.TakeWebAuthnChallenge(ctx, "never"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown: %v, want ErrNotFound", err)
	}
}

func testChallengeExpiry(t *testing.T, b Backend) {
	now := time.Now().UTC().Truncate(time.Second)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st := Open(t, b.URL(t), store.Options{Now: clock})
	ctx := ctxT(t)
	for _, id := range []string{"exp-1", "exp-2"} {
		if err := st.SaveWebAuthnChallenge(ctx, &store.WebAuthnChallenge{ID: id, Purpose: "login", Data: "{}", ExpiresAt: now.Add(5 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	now = now.Add(5 * time.Minute)
	mu.Unlock()
	if _, err := st.TakeWebAuthnChallenge(ctx, "exp-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired challenge taken: %v", err)
	}
	// A new challenge sweeps the expired ones out.
	if err := st.SaveWebAuthnChallenge(ctx, &store.WebAuthnChallenge{ID: "exp-3", Purpose: "login", Data: "{}", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(-10 * time.Minute)
	mu.Unlock()
	if _, err := st.TakeWebAuthnChallenge(ctx, "exp-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired challenge not swept: %v", err)
	}
}

func testChallengeConcurrent(t *testing.T, b Backend) {
	url := b.URL(t)
	a, c := Open(t, url, store.Options{}), Open(t, url, store.Options{})
	ctx := ctxT(t)
	for round := range 5 {
		id := "race-" + string(rune('a'+round))
		if err := a.SaveWebAuthnChallenge(ctx, &store.WebAuthnChallenge{ID: id, Purpose: "login", Data: "{}", ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			st := a
			if i%2 == 1 {
				st = c
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := st.TakeWebAuthnChallenge(ctx, id); err == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d takes won, want 1", round, n)
		}
	}
}
