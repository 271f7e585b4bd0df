package janitor_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/janitor"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"github.com/ory/fosite"
)

func grant(c *store.Client, id string, exp time.Time) *fosite.Request {
	r := fosite.NewRequest()
	r.ID, r.Client, r.RequestedAt, r.Form = id, c, time.Now().UTC(), url.Values{}
	s := grantsession.New("user")
	for _, k := range []fosite.TokenType{fosite.AccessToken, fosite.RefreshToken, fosite.AuthorizeCode} {
		s.SetExpiresAt(k, exp)
	}
	r.Session = s
	return r
}

var retention = store.Retention{AccessTokenTTL: 15 * time.Minute, SessionIdleTTL: time.Hour, FailureWindow: 15 * time.Minute}

// Expired rows go in batches; live ones stay; the codes of live grants stay
// past their own expiry so that logout can still find those grants.
func TestPassDeletesExpiredOnly(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &store.Client{ID: "c", TokenEndpointAuthMethod: "none"}
		_ = st.CreateClient(ctx, c)
		past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		for i := range 25 {
			n := strconv.Itoa(i)
			_ = st.CreateAccessTokenSession(ctx, "old-at-"+n, grant(c, "g"+n, past))
			_ = st.CreateRefreshTokenSession(ctx, "old-rt-"+n, "", grant(c, "g"+n, past))
		}
		_ = st.CreateAccessTokenSession(ctx, "live-at", grant(c, "live", future))
		_ = st.CreateRefreshTokenSession(ctx, "live-rt", "", grant(c, "live", future))
		_ = st.CreateAuthorizeCodeSession(ctx, "recent-code", grant(c, "recent", time.Now().Add(-time.Minute)))
		_ = st.CreateAuthorizeCodeSession(ctx, "old-code", grant(c, "old", time.Now().Add(-time.Hour)))
		_ = st.RevokeJTI(ctx, "old-jti", past)
		_ = st.RevokeJTI(ctx, "live-jti", future)

		j := janitor.New(st, retention, slog.New(slog.DiscardHandler))
		j.Batch, j.Pause = 10, 0
		n, held, err := j.Pass(ctx)
		if err != nil || !held || n != 25+25+1+1 {
			t.Fatalf("pass deleted %d (held %v, %v), want 52", n, held, err)
		}
		if _, err := st.GetAccessTokenSession(ctx, "live-at", nil); err != nil {
			t.Error("a live access token was deleted")
		}
		if _, err := st.GetRefreshTokenSession(ctx, "live-rt", nil); err != nil {
			t.Error("a live refresh token was deleted")
		}
		if _, err := st.GetAuthorizeCodeSession(ctx, "recent-code", nil); err != nil {
			t.Error("a code whose access tokens may still live was deleted")
		}
		if _, err := st.GetAuthorizeCodeSession(ctx, "old-code", nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Error("an old code survived")
		}
		if revoked, _ := st.IsRevoked(ctx, "live-jti", "x", "y", time.Now()); !revoked {
			t.Error("a live deny-list entry was deleted")
		}
	})
}

// A pass ends once it has caught up, even while tokens keep expiring: a
// pass that waited for a round with nothing to delete would never end
// under steady traffic, and the last good pass would never be dated.
func TestPassEndsUnderSteadyExpiry(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &store.Client{ID: "c", TokenEndpointAuthMethod: "none"}
		_ = st.CreateClient(ctx, c)
		past := time.Now().Add(-time.Hour)
		for i := range 5 {
			_ = st.CreateAccessTokenSession(ctx, "old-at-"+strconv.Itoa(i), grant(c, "g"+strconv.Itoa(i), past))
		}
		steady := &expiringStream{Store: st, c: c, past: past}
		j := janitor.New(steady, retention, slog.New(slog.DiscardHandler))
		j.Batch, j.Pause = 2, 0
		done := make(chan struct{})
		var n int64
		var err error
		go func() { defer close(done); n, _, err = j.Pass(ctx) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the pass did not end while one token expired per round")
		}
		// 5 at first, one more per round: rounds of 2, 2, 2, 2, then 1.
		if err != nil || n != 9 {
			t.Fatalf("pass deleted %d (%v), want 9", n, err)
		}
	})
}

// expiringStream is the real store with one more expired access token
// written after every round of deletes, as traffic would.
type expiringStream struct {
	*store.Store
	c     *store.Client
	past  time.Time
	round int
}

func (e *expiringStream) DeleteExpiredByTable(ctx context.Context, r store.Retention, batch int) (map[string]int64, error) {
	got, err := e.Store.DeleteExpiredByTable(ctx, r, batch)
	e.round++
	id := "new-at-" + strconv.Itoa(e.round)
	if cerr := e.CreateAccessTokenSession(ctx, id, grant(e.c, id, e.past)); cerr != nil {
		return got, cerr
	}
	return got, err
}

// Of several instances running the janitor at once, one holds the lease.
func TestLeaseOneHolder(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		st := storetest.New(t, b)
		var wg sync.WaitGroup
		held := make([]bool, 6)
		for i := range held {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := st.AcquireLease(context.Background(), "test", "holder-"+strconv.Itoa(i), time.Minute)
				if err != nil {
					t.Error(err)
				}
				held[i] = ok
			}()
		}
		wg.Wait()
		count := 0
		for _, h := range held {
			if h {
				count++
			}
		}
		if count != 1 {
			t.Fatalf("%d holders of one lease", count)
		}
	})
}

// Issue 11 item 6: the janitor keeps the login session -> grant relation
// for as long as the grant can live (Retention.GrantLifetime from the code),
// however long ago the code and the first tokens were purged, and drops it
// afterwards.
func TestPassKeepsLoginSessionGrantsWhileGrantCanLive(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		now := time.Now()
		st := storetest.Open(t, b.URL(t), store.Options{Now: func() time.Time { return now }})
		c := &store.Client{ID: "c", TokenEndpointAuthMethod: "none"}
		_ = st.CreateClient(ctx, c)
		r := grant(c, "g", now.Add(time.Minute))
		r.Session.(*grantsession.Session).LoginSessionID = "ls"
		if err := st.CreateAuthorizeCodeSession(ctx, "code", r); err != nil {
			t.Fatal(err)
		}
		keep := retention
		keep.GrantLifetime = 48 * time.Hour
		j := janitor.New(st, keep, slog.New(slog.DiscardHandler))
		j.Pause = 0
		for _, tc := range []struct {
			name  string
			after time.Duration
			want  int
		}{
			{"code purged, grant may live", 47 * time.Hour, 1},
			{"past the grant's lifetime", 49 * time.Hour, 0},
		} {
			now = time.Now().Add(tc.after)
			if _, _, err := j.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			if ids, err := st.GrantsOfLoginSession(ctx, "ls"); err != nil || len(ids) != tc.want {
				t.Errorf("%s: grants of the session %v (%v), want %d", tc.name, ids, err, tc.want)
			}
		}
	})
}
