package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

// deviceTests are the conformance cases of device codes (RFC 8628,
// store/device.go).
var deviceTests = []struct {
	name string
	fn   func(t *testing.T, st *store.Store)
}{
	{"DeviceCodeLifecycle", testDeviceCodeLifecycle},
	{"DeviceCodeUserCodeUniqueAmongLive", testDeviceUserCodeUnique},
	{"DeviceCodeRevokedWithSessionOrUser", testDeviceCodeRevoked},
}

// deviceBackendTests need a clock, or two instances on one database.
var deviceBackendTests = []struct {
	name string
	fn   func(t *testing.T, b Backend)
}{
	{"DeviceCodeExpiresAndIsPurged", testDeviceCodeExpiry},
	{"DeviceCodeConcurrentClaimsOneWinnerAcrossInstances", testDeviceConcurrentClaim},
}

func mustDeviceCode(t *testing.T, st *store.Store, sig, userCode, clientID string, exp time.Time) *store.DeviceCode {
	t.Helper()
	dc := &store.DeviceCode{Signature: sig, UserCode: userCode, RequestID: "grant-" + sig, ClientID: clientID,
		Scopes: []string{"openid", "read"}, Audience: []string{"https://api.example"}, Interval: 5, ExpiresAt: exp}
	if err := st.CreateDeviceCode(ctxT(t), dc); err != nil {
		t.Fatalf("create device code: %v", err)
	}
	return dc
}

func mustDeviceStatus(t *testing.T, st *store.Store, sig string, want store.DeviceStatus) *store.DeviceCode {
	t.Helper()
	dc, err := st.GetDeviceCode(ctxT(t), sig)
	if err != nil {
		t.Fatalf("get device code: %v", err)
	}
	if dc.Status != want {
		t.Fatalf("status %q, want %q", dc.Status, want)
	}
	return dc
}

func testDeviceCodeLifecycle(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustClient(t, st, "dev-a")
	mustClient(t, st, "dev-b")
	mustUser(t, st, "dev-u")
	ls := sessionWith(t, st, "dev-cookie", "dev-u")
	exp := time.Now().Add(10 * time.Minute)
	mustDeviceCode(t, st, "sig-1", "uc-1", "dev-a", exp)

	if err := st.CreateDeviceCode(ctx, &store.DeviceCode{Signature: "sig-x", UserCode: "uc-x", RequestID: "g", ClientID: "nobody", ExpiresAt: exp}); !errors.Is(err, store.ErrMissingReference) {
		t.Errorf("device code of a missing client: %v, want ErrMissingReference", err)
	}
	if _, err := st.GetDeviceCode(ctx, "never"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown device code: %v, want ErrNotFound", err)
	}
	got := mustDeviceStatus(t, st, "sig-1", store.DevicePending)
	if got.ClientID != "dev-a" || got.RequestID != "grant-sig-1" || got.Interval != 5 || len(got.Scopes) != 2 || got.Audience[0] != "https://api.example" {
		t.Errorf("round trip: %+v", got)
	}
	if found, err := st.FindPendingDeviceCode(ctx, "uc-1"); err != nil || found.Signature != "sig-1" {
		t.Fatalf("find by user code: %v %v", found, err)
	}
	// A claim before approval, or by another client, wins nothing.
	if err := st.ClaimDeviceCode(ctx, got); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("claim of a pending code: %v, want ErrNotFound", err)
	}
	// slow_down only ever raises the interval.
	if err := st.SlowDownDeviceCode(ctx, "sig-1", 10); err != nil {
		t.Fatal(err)
	}
	if err := st.SlowDownDeviceCode(ctx, "sig-1", 7); err != nil {
		t.Fatal(err)
	}
	if dc := mustDeviceStatus(t, st, "sig-1", store.DevicePending); dc.Interval != 10 {
		t.Errorf("interval %d after slow downs to 10 and 7, want 10", dc.Interval)
	}

	approval := store.DeviceApproval{UserID: "dev-u", LoginSessionID: ls.ID, SessionData: `{"sub":"dev-u"}`}
	if err := st.ApproveDeviceCode(ctx, "sig-1", approval); err != nil {
		t.Fatalf("approve: %v", err)
	}
	// Decided once: neither a second approval nor a denial changes it, and
	// the user code no longer finds it.
	if err := st.ApproveDeviceCode(ctx, "sig-1", approval); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second approval: %v, want ErrNotFound", err)
	}
	if err := st.DenyDeviceCode(ctx, "sig-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("denial after approval: %v, want ErrNotFound", err)
	}
	if _, err := st.FindPendingDeviceCode(ctx, "uc-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("find of an approved code by user code: %v, want ErrNotFound", err)
	}
	dc := mustDeviceStatus(t, st, "sig-1", store.DeviceApproved)
	if dc.UserID == nil || *dc.UserID != "dev-u" || dc.SessionData == nil || *dc.SessionData != approval.SessionData {
		t.Errorf("approval not recorded: %+v", dc)
	}
	if grants := RawColumn(t, st, "login_session_grants", "request_id"); len(grants) != 1 || grants[0] != "grant-sig-1" {
		t.Errorf("the approval's grant is not tied to the login session: %v", grants)
	}
	other := *dc
	other.ClientID = "dev-b"
	if err := st.ClaimDeviceCode(ctx, &other); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("claim by another client: %v, want ErrNotFound", err)
	}
	if err := st.ClaimDeviceCode(ctx, dc); err != nil {
		t.Fatalf("claim: %v", err)
	}
	if err := st.ClaimDeviceCode(ctx, dc); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second claim: %v, want ErrNotFound", err)
	}
	mustDeviceStatus(t, st, "sig-1", store.DeviceUsed)

	mustDeviceCode(t, st, "sig-2", "uc-2", "dev-a", exp)
	if err := st.DenyDeviceCode(ctx, "sig-2"); err != nil {
		t.Fatal(err)
	}
	mustDeviceStatus(t, st, "sig-2", store.DeviceDenied)

	// Deleting the client deletes its device codes.
	mustDeviceCode(t, st, "sig-3", "uc-3", "dev-b", exp)
	if err := st.DeleteClient(ctx, "dev-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetDeviceCode(ctx, "sig-3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("device code of a deleted client: %v, want ErrNotFound", err)
	}
}

func testDeviceUserCodeUnique(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustClient(t, st, "dev-uniq")
	mustDeviceCode(t, st, "live", "same", "dev-uniq", time.Now().Add(time.Minute))
	err := st.CreateDeviceCode(ctx, &store.DeviceCode{Signature: "other", UserCode: "same", RequestID: "g2", ClientID: "dev-uniq", Interval: 5, ExpiresAt: time.Now().Add(time.Minute)})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("second live code with one user code: %v, want ErrAlreadyExists", err)
	}
	// An expired row does not hold its user code until the janitor comes.
	mustDeviceCode(t, st, "old", "reused", "dev-uniq", time.Now().Add(-time.Second))
	mustDeviceCode(t, st, "new", "reused", "dev-uniq", time.Now().Add(time.Minute))
	if _, err := st.GetDeviceCode(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired row holding the user code is still there: %v", err)
	}
}

// An approved code not yet redeemed is revoked with the login session that
// approved it, or with its user: it can no longer be claimed.
func testDeviceCodeRevoked(t *testing.T, st *store.Store) {
	ctx := ctxT(t)
	mustClient(t, st, "dev-rev")
	mustUser(t, st, "dev-ru")
	exp := time.Now().Add(time.Minute)
	for i, end := range []func(ls *store.LoginSession) error{
		func(ls *store.LoginSession) error { return st.EndLoginSession(ctx, ls.ID, exp) },
		func(*store.LoginSession) error { return st.RevokeSubject(ctx, "dev-ru", exp) },
	} {
		sig := fmt.Sprintf("rev-%d", i)
		ls := sessionWith(t, st, "rev-cookie-"+sig, "dev-ru")
		dc := mustDeviceCode(t, st, sig, "uc-"+sig, "dev-rev", exp)
		if err := st.ApproveDeviceCode(ctx, sig, store.DeviceApproval{UserID: "dev-ru", LoginSessionID: ls.ID, SessionData: "{}"}); err != nil {
			t.Fatal(err)
		}
		if err := end(ls); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		mustDeviceStatus(t, st, sig, store.DeviceRevoked)
		if err := st.ClaimDeviceCode(ctx, dc); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("case %d: claim after revocation: %v, want ErrNotFound", i, err)
		}
	}
}

func testDeviceCodeExpiry(t *testing.T, b Backend) {
	clock := &manualClock{now: time.Now().UTC()}
	st := Open(t, b.URL(t), store.Options{Now: clock.Now})
	ctx := ctxT(t)
	mustClient(t, st, "dev-exp")
	mustUser(t, st, "dev-eu")
	ls := sessionWith(t, st, "dev-exp-cookie", "dev-eu")
	mustDeviceCode(t, st, "e1", "ue1", "dev-exp", clock.Now().Add(time.Minute))
	mustDeviceCode(t, st, "e2", "ue2", "dev-exp", clock.Now().Add(time.Minute))
	if err := st.ApproveDeviceCode(ctx, "e2", store.DeviceApproval{UserID: "dev-eu", LoginSessionID: ls.ID, SessionData: "{}"}); err != nil {
		t.Fatal(err)
	}
	clock.advance(61 * time.Second)
	if _, err := st.FindPendingDeviceCode(ctx, "ue1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired code by user code: %v, want ErrNotFound", err)
	}
	if err := st.ApproveDeviceCode(ctx, "e1", store.DeviceApproval{UserID: "dev-eu", LoginSessionID: ls.ID, SessionData: "{}"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("approval of an expired code: %v, want ErrNotFound", err)
	}
	dc := mustDeviceStatus(t, st, "e2", store.DeviceApproved)
	if err := st.ClaimDeviceCode(ctx, dc); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim of an expired code: %v, want ErrNotFound", err)
	}
	if _, err := st.DeleteExpiredBatch(ctx, store.Retention{}, 100); err != nil {
		t.Fatal(err)
	}
	if rows := RawColumn(t, st, "device_codes", "signature"); len(rows) != 0 {
		t.Errorf("the janitor left expired device codes: %v", rows)
	}
}

// Two instances on one database, many claims of one approved code at
// once, each in a transaction as the token endpoint runs it: exactly one
// wins, the rest ErrNotFound.
func testDeviceConcurrentClaim(t *testing.T, b Backend) {
	url := b.URL(t)
	one, two := Open(t, url, store.Options{}), Open(t, url, store.Options{})
	ctx := ctxT(t)
	mustClient(t, one, "dev-race")
	mustUser(t, one, "dev-racer")
	ls := sessionWith(t, one, "dev-race-cookie", "dev-racer")
	for round := range 5 {
		sig := fmt.Sprintf("race-%d", round)
		dc := mustDeviceCode(t, one, sig, "u"+sig, "dev-race", time.Now().Add(time.Minute))
		if err := one.ApproveDeviceCode(ctx, sig, store.DeviceApproval{UserID: "dev-racer", LoginSessionID: ls.ID, SessionData: "{}"}); err != nil {
			t.Fatal(err)
		}
		var n atomic.Int64
		errs := runConcurrently(10, func() error {
			st := one
			if n.Add(1)%2 == 0 {
				st = two
			}
			return st.InTx(ctx, func(ctx context.Context) error { return st.ClaimDeviceCode(ctx, dc) })
		})
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrNotFound):
			default:
				t.Errorf("loser got %v, want ErrNotFound", err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d claims won, want exactly 1", round, wins)
		}
	}
}
