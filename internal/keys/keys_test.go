package keys_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

var secret = secrets.ParseSystemSecrets("keys-test-system-secret-0123456789abcdef")

// clock is a settable time source shared by the managers under test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func options(c *clock, alg string) keys.Options {
	return keys.Options{
		Alg: alg, RotationPeriod: 24 * time.Hour, PrepublishPeriod: 10 * time.Minute,
		TokenTTL: 15 * time.Minute, Now: c.Now,
	}
}

func newManager(t *testing.T, st *store.Store, c *clock, alg string) *keys.Manager {
	t.Helper()
	m, err := keys.New(context.Background(), st, secret, options(c, alg))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sign(t *testing.T, m *keys.Manager) (string, string) {
	t.Helper()
	k, err := m.Current()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(k.Signer).Claims(jwt.Claims{Subject: "s"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok, k.KID
}

// verifies reports whether tok verifies against the published set.
func verifies(m *keys.Manager, tok string) bool {
	parsed, err := jwt.ParseSigned(tok, keys.Algorithms)
	if err != nil {
		return false
	}
	set := m.JWKS()
	ks := set.Key(parsed.Headers[0].KeyID)
	if len(ks) == 0 {
		return false
	}
	var c jwt.Claims
	return parsed.Claims(ks[0].Key, &c) == nil
}

func mustList(t *testing.T, st *store.Store) []store.SigningKey {
	t.Helper()
	rows, err := st.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// ofAlg keeps the keys of one algorithm's chain, in List's order.
func ofAlg(list []keys.Info, alg string) []keys.Info {
	var out []keys.Info
	for _, info := range list {
		if info.Alg == alg {
			out = append(out, info)
		}
	}
	return out
}

// rowsOf keeps the stored keys of one algorithm, oldest activation first.
func rowsOf(rows []store.SigningKey, alg string) []store.SigningKey {
	var out []store.SigningKey
	for _, row := range rows {
		if row.Alg == alg {
			out = append(out, row)
		}
	}
	return out
}

// signWith signs an ID token with the current key of alg.
func signWith(t *testing.T, m *keys.Manager, alg string) (string, string) {
	t.Helper()
	k, err := m.CurrentFor(jose.SignatureAlgorithm(alg))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Sign(keys.TypIDToken, []byte(`{"sub":"s"}`))
	if err != nil {
		t.Fatal(err)
	}
	return tok, k.KID
}

// Whatever LATCHKEY_SIGNING_ALG says, a new database gets an active key of
// every algorithm at once; access tokens are signed with the configured
// one, and every algorithm's current key signs an ID token (typ JWT) that
// verifies against the JWKS.
func TestAlgorithms(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			st := storetest.New(t, storetest.Backends()[0])
			m := newManager(t, st, &clock{now: time.Now()}, alg)
			tok, kid := sign(t, m)
			parsed, err := jwt.ParseSigned(tok, keys.Algorithms)
			if err != nil {
				t.Fatal(err)
			}
			h := parsed.Headers[0]
			if h.Algorithm != alg || h.KeyID != kid || h.ExtraHeaders[jose.HeaderType] != "at+jwt" {
				t.Fatalf("header %+v", h)
			}
			if !verifies(m, tok) {
				t.Fatal("token does not verify against the JWKS")
			}
			set := m.JWKS()
			if len(set.Keys) != len(keys.Algorithms) {
				t.Fatalf("JWKS has %d keys, want one per algorithm", len(set.Keys))
			}
			for i, k := range set.Keys {
				if !k.IsPublic() || k.Use != "sig" || k.Algorithm != string(keys.Algorithms[i]) {
					t.Fatalf("JWKS key %d: %+v", i, k)
				}
			}
			for _, info := range m.List() {
				if info.State != "active" || info.Sealed != "current secret" {
					t.Fatalf("first keys: %+v", m.List())
				}
			}
			for _, other := range keys.Algorithms {
				idt, kid := signWith(t, m, string(other))
				parsed, err := jwt.ParseSigned(idt, []jose.SignatureAlgorithm{other})
				if err != nil {
					t.Fatalf("%s: %v", other, err)
				}
				if h := parsed.Headers[0]; h.KeyID != kid || h.ExtraHeaders[jose.HeaderType] != "JWT" {
					t.Fatalf("%s ID token header %+v", other, h)
				}
				if !verifies(m, idt) {
					t.Fatalf("%s ID token does not verify against the JWKS", other)
				}
			}
		})
	}
	if _, err := keys.New(context.Background(), storetest.New(t, storetest.Backends()[0]), secret, options(&clock{now: time.Now()}, "HS256")); err == nil {
		t.Fatal("HS256 accepted")
	}
	m := newManager(t, storetest.New(t, storetest.Backends()[0]), &clock{now: time.Now()}, "ES256")
	if _, err := m.CurrentFor(jose.HS256); !errors.Is(err, keys.ErrNoSigningKey) {
		t.Fatalf("CurrentFor(HS256): %v", err)
	}
}

// The token path reads keys without allocating (an atomic pointer, no lock).
func TestTokenPathAllocatesNothing(t *testing.T) {
	m := newManager(t, storetest.New(t, storetest.Backends()[0]), &clock{now: time.Now()}, "RS256")
	kid := m.List()[len(m.List())-1].KID
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := m.Current(); err != nil {
			t.Fatal(err)
		}
		for _, alg := range keys.Algorithms {
			if _, err := m.CurrentFor(alg); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := m.Lookup(kid); !ok {
			t.Fatal("lookup")
		}
	})
	if allocs != 0 {
		t.Fatalf("Current, CurrentFor and Lookup allocate %.0f times", allocs)
	}
}

// Staged rotation: published before it signs; the old key keeps verifying
// its tokens until they expire, then leaves the JWKS and the database.
// Rotate rotates every algorithm's chain.
func TestStagedRotation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &clock{now: time.Now().UTC()}
		m := newManager(t, st, c, "ES256")
		oldTok, oldKID := sign(t, m)
		oldRS, oldRSKID := signWith(t, m, "RS256")

		info, err := m.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State != "pending" || info.KID == oldKID || info.Alg != "ES256" {
			t.Fatalf("rotated key %+v", info)
		}
		for _, alg := range keys.Algorithms {
			chain := ofAlg(m.List(), string(alg))
			if len(chain) != 2 || chain[0].State != "active" || chain[1].State != "pending" {
				t.Fatalf("%s chain after Rotate: %+v", alg, chain)
			}
		}
		if again, _ := m.Rotate(ctx); again.KID != info.KID || len(m.List()) != 2*len(keys.Algorithms) {
			t.Fatal("a second rotation while one is pending made another key")
		}
		// Published at once, not yet signing.
		if set := m.JWKS(); len(set.Keys) != 2*len(keys.Algorithms) {
			t.Fatalf("JWKS has %d keys during pre-publication", len(set.Keys))
		}
		if _, kid := sign(t, m); kid != oldKID {
			t.Fatal("the new key signed before its pre-publication ended")
		}
		if _, kid := signWith(t, m, "RS256"); kid != oldRSKID {
			t.Fatal("the new RS256 key signed before its pre-publication ended")
		}

		c.Add(10 * time.Minute)
		newTok, newKID := sign(t, m)
		if newKID != info.KID {
			t.Fatal("the new key does not sign after pre-publication")
		}
		newRS, newRSKID := signWith(t, m, "RS256")
		if newRSKID == oldRSKID {
			t.Fatal("the new RS256 key does not sign after pre-publication")
		}
		for name, tok := range map[string]string{"old": oldTok, "new": newTok, "old RS256": oldRS, "new RS256": newRS} {
			if !verifies(m, tok) {
				t.Fatalf("%s token does not verify right after rotation", name)
			}
		}

		// Another instance picks the rotation up from the database.
		other := newManager(t, st, c, "ES256")
		if _, kid := sign(t, other); kid != newKID {
			t.Fatal("a second instance signs with another key")
		}

		c.Add(15*time.Minute + time.Minute + time.Second)
		if err := m.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if verifies(m, oldTok) || verifies(m, oldRS) {
			t.Fatal("a retired key is still published after its tokens expired")
		}
		rows, _ := st.ListSigningKeys(ctx)
		if len(rows) != len(keys.Algorithms) {
			t.Fatalf("keys left in the database: %d", len(rows))
		}
		for _, row := range rows {
			if row.KID == oldKID || row.KID == oldRSKID || len(row.PrivateKey) == 0 {
				t.Fatalf("left in the database: %+v", row.KID)
			}
		}
	})
}

// Each chain rotates on its own schedule every RotationPeriod.
func TestScheduledRotation(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Backends()[0])
	c := &clock{now: time.Now().UTC()}
	m := newManager(t, st, c, "ES256")
	_, first := sign(t, m)

	c.Add(23 * time.Hour)
	if err := m.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if list := m.List(); len(list) != len(keys.Algorithms) {
		t.Fatalf("rotated too early: %+v", list)
	}
	c.Add(50 * time.Minute) // within the pre-publication period of the end
	if err := m.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, alg := range keys.Algorithms {
		if chain := ofAlg(m.List(), string(alg)); len(chain) != 2 || chain[1].State != "pending" {
			t.Fatalf("%s: no successor published before the period ended: %+v", alg, chain)
		}
	}
	c.Add(10 * time.Minute)
	if _, kid := sign(t, m); kid == first {
		t.Fatal("the successor does not sign when the period ends")
	}
}

// Changing LATCHKEY_SIGNING_ALG needs no rotation: the new algorithm's
// chain already has a published, active key, so access tokens switch at
// once, and tokens the old algorithm signed keep verifying.
func TestAlgChangeIsImmediate(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Backends()[0])
	c := &clock{now: time.Now().UTC()}
	es := newManager(t, st, c, "ES256")
	esTok, esKID := sign(t, es)
	before := es.List()

	c.Add(time.Hour)
	rs := newManager(t, st, c, "RS256")
	if err := rs.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	rsTok, rsKID := sign(t, rs)
	parsed, err := jwt.ParseSigned(rsTok, keys.Algorithms)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Headers[0].Algorithm != "RS256" || rsKID == esKID {
		t.Fatalf("after the switch access tokens are signed with %s", parsed.Headers[0].Algorithm)
	}
	if after := rs.List(); len(after) != len(before) {
		t.Fatalf("the switch made keys: %+v", after)
	}
	if !verifies(rs, esTok) || !verifies(es, rsTok) {
		t.Fatal("tokens of the old and the new algorithm must verify at every instance")
	}
	if _, kid := sign(t, es); kid != esKID {
		t.Fatal("an instance still configured with ES256 changed key")
	}
}

// An upgrade from a database holding one algorithm's keys: the missing
// algorithms get a first key that is published at once and signs after
// the pre-publication period (a verifier's cached JWKS may not hold it
// yet); until then CurrentFor answers ErrNoSigningKey for them.
func TestUpgradeFromOneAlgorithm(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		st := storetest.Open(t, url, store.Options{})
		c := &clock{now: time.Now().UTC()}
		oneAlg(t, st, c)
		rows, _ := st.ListSigningKeys(ctx)
		esKID := rows[0].KID

		c.Add(time.Hour)
		// Upgraded instances start together: one first key per missing
		// algorithm between them.
		const n = 4
		managers := make([]*keys.Manager, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := keys.New(ctx, storetest.Open(t, url, store.Options{}), secret, options(c, "ES256"))
				if err != nil {
					t.Error(err)
					return
				}
				managers[i] = m
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		m := managers[0]
		rows, _ = st.ListSigningKeys(ctx)
		if len(rows) != len(keys.Algorithms) {
			t.Fatalf("%d keys after %d instances upgraded a one-algorithm database", len(rows), n)
		}
		for _, alg := range []string{"RS256", "EdDSA"} {
			chain := ofAlg(m.List(), alg)
			if len(chain) != 1 || chain[0].State != "pending" || chain[0].ActivatesAt.Sub(c.Now().Add(10*time.Minute)).Abs() > time.Millisecond {
				t.Fatalf("%s after the upgrade: %+v", alg, chain)
			}
			if _, err := m.CurrentFor(jose.SignatureAlgorithm(alg)); !errors.Is(err, keys.ErrNoSigningKey) {
				t.Fatalf("CurrentFor(%s) while pre-published: %v, want ErrNoSigningKey", alg, err)
			}
		}
		if set := m.JWKS(); len(set.Keys) != len(keys.Algorithms) {
			t.Fatalf("the new keys are not published at once: %d keys", len(set.Keys))
		}
		if _, kid := sign(t, m); kid != esKID {
			t.Fatal("the upgrade changed the access token key")
		}

		// An instance upgraded and switched to RS256 at the same time signs
		// access tokens with the published ES256 key until RS256 activates.
		rs := newManager(t, st, c, "RS256")
		if _, kid := sign(t, rs); kid != esKID {
			t.Fatal("no fallback to the active ES256 key while the RS256 chain is pre-published")
		}

		c.Add(10 * time.Minute)
		for _, alg := range keys.Algorithms {
			tok, _ := signWith(t, m, string(alg))
			if !verifies(m, tok) {
				t.Fatalf("%s does not sign after pre-publication", alg)
			}
		}
		if k, _ := rs.Current(); k.Alg != jose.RS256 {
			t.Fatalf("the RS256 instance signs with %s after the chain activated", k.Alg)
		}
	})
}

// oneAlg leaves the database as a version with one chain left it: ES256
// keys only.
func oneAlg(t *testing.T, st *store.Store, c *clock) {
	t.Helper()
	ctx := context.Background()
	newManager(t, st, c, "ES256")
	rows, err := st.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if row.Alg != "ES256" {
			if err := st.DeleteSigningKey(ctx, row.KID); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The chains are independent: out of phase after an upgrade, each rotates
// on its own schedule, and a key retires, turns verify-only and is deleted
// only when a newer key of its own algorithm has taken over.
func TestChainsAreIndependent(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &clock{now: time.Now().UTC()}
		oneAlg(t, st, c)
		m := newManager(t, st, c, "ES256") // RS256 and EdDSA activate 10 minutes after ES256
		c.Add(10 * time.Minute)
		rsTok, rsKID := signWith(t, m, "RS256")
		esTok, esKID := sign(t, m)

		// ES256 is due 24h - 10m after it activated; the others 10 minutes later.
		c.Add(24*time.Hour - 20*time.Minute)
		if err := m.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if es, rs := ofAlg(m.List(), "ES256"), ofAlg(m.List(), "RS256"); len(es) != 2 || len(rs) != 1 {
			t.Fatalf("only ES256 is due: ES256 %+v, RS256 %+v", es, rs)
		}
		c.Add(10 * time.Minute) // ES256's successor signs; RS256 is due now
		if err := m.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if _, kid := sign(t, m); kid == esKID {
			t.Fatal("ES256's successor does not sign")
		}
		for _, alg := range []string{"RS256", "EdDSA"} {
			chain := ofAlg(m.List(), alg)
			if len(chain) != 2 || chain[0].State != "active" || chain[1].State != "pending" {
				t.Fatalf("%s when due: %+v", alg, chain)
			}
		}
		if _, kid := signWith(t, m, "RS256"); kid != rsKID {
			t.Fatal("ES256's rotation retired the RS256 key")
		}
		if es := ofAlg(m.List(), "ES256"); es[0].State != "retired" || es[0].Sealed != "current secret" {
			t.Fatalf("ES256's old key: %+v", es[0])
		}

		// A minute later ES256's old key is verify-only; RS256's is untouched.
		c.Add(time.Minute)
		if err := m.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		rows, _ := st.ListSigningKeys(ctx)
		if es := rowsOf(rows, "ES256"); es[0].KID != esKID || len(es[0].PrivateKey) != 0 {
			t.Fatal("ES256's retired key still has its private half")
		}
		if rs := rowsOf(rows, "RS256"); rs[0].KID != rsKID || len(rs[0].PrivateKey) == 0 {
			t.Fatal("RS256's key lost its private half before its successor signed")
		}

		// RS256's successor signs 10 minutes after ES256's did; once ES256's
		// old tokens have expired its old key goes, while RS256's stays
		// until its own tokens have expired.
		c.Add(9 * time.Minute)
		if _, kid := signWith(t, m, "RS256"); kid == rsKID {
			t.Fatal("RS256's successor does not sign on its schedule")
		}
		c.Add(7*time.Minute + time.Second)
		if err := m.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if verifies(m, esTok) || !verifies(m, rsTok) {
			t.Fatal("ES256's old key must be gone and RS256's old key still published")
		}
		rows, _ = st.ListSigningKeys(ctx)
		if es, rs := rowsOf(rows, "ES256"), rowsOf(rows, "RS256"); len(es) != 1 || len(rs) != 2 || len(rs[0].PrivateKey) != 0 {
			t.Fatalf("after ES256's old key expired: %d ES256 rows, %d RS256 rows", len(es), len(rs))
		}
		c.Add(10 * time.Minute)
		if err := m.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if verifies(m, rsTok) {
			t.Fatal("RS256's old key is still published after its tokens expired")
		}
		if rows, _ = st.ListSigningKeys(ctx); len(rows) != len(keys.Algorithms) {
			t.Fatalf("%d keys left, want one per algorithm", len(rows))
		}
	})
}

// Instances that start together on one empty database end with one key
// per algorithm, every one of them active.
func TestConcurrentFirstKey(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		storetest.Open(t, url, store.Options{}) // migrate once
		c := &clock{now: time.Now()}
		const n = 4
		kids := make([][]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := storetest.Open(t, url, store.Options{})
				m, err := keys.New(context.Background(), st, secret, options(c, "ES256"))
				if err != nil {
					t.Error(err)
					return
				}
				for _, alg := range keys.Algorithms {
					k, err := m.CurrentFor(alg)
					if err != nil {
						t.Error(err)
						return
					}
					kids[i] = append(kids[i], k.KID)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for _, k := range kids[1:] {
			if !slices.Equal(k, kids[0]) {
				t.Fatalf("instances sign with different keys: %v", kids)
			}
		}
		rows, _ := storetest.Open(t, url, store.Options{}).ListSigningKeys(context.Background())
		if len(rows) != len(keys.Algorithms) {
			t.Fatalf("%d keys made by %d instances", len(rows), n)
		}
		for _, alg := range keys.Algorithms {
			if len(rowsOf(rows, string(alg))) != 1 {
				t.Fatalf("not one %s key: %d rows", alg, len(rows))
			}
		}
	})
}

// The database holds the private keys only sealed, and a wrong secret is a
// clear error rather than a crash, which adds no key: an upgrade started
// with the wrong secret does not make the missing algorithms' keys under it.
func TestPrivateKeyAtRest(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		m := newManager(t, st, &clock{now: time.Now()}, "ES256")
		rows, err := st.ListSigningKeys(ctx)
		if err != nil || len(rows) != len(keys.Algorithms) {
			t.Fatal(err)
		}
		// Recover the private scalar the signer uses by opening the key
		// the way the manager does, then look for it in the raw rows.
		d := privateScalar(t, m)
		for _, stored := range storetest.RawColumn(t, st, "signing_keys", "private_key") {
			if bytes.Contains([]byte(stored), d) {
				t.Fatal("the private key's bytes are in the database")
			}
			if bytes.Contains([]byte(stored), []byte(`"d":`)) {
				t.Fatal("the stored key holds a JWK in the clear")
			}
		}
		wrong := secrets.ParseSystemSecrets("another-secret-that-is-long-enough-000000")
		_, err = keys.New(ctx, st, wrong, options(&clock{now: time.Now()}, "ES256"))
		if !errors.Is(err, keys.ErrWrongSecret) {
			t.Fatalf("wrong secret: %v, want ErrWrongSecret", err)
		}

		st = storetest.New(t, b)
		oneAlg(t, st, &clock{now: time.Now()})
		if _, err := keys.New(ctx, st, wrong, options(&clock{now: time.Now()}, "ES256")); !errors.Is(err, keys.ErrWrongSecret) {
			t.Fatalf("wrong secret on a one-algorithm database: %v, want ErrWrongSecret", err)
		}
		if rows, _ := st.ListSigningKeys(ctx); len(rows) != 1 {
			t.Fatalf("an instance with the wrong secret added keys: %d rows", len(rows))
		}
	})
}

func privateScalar(t *testing.T, m *keys.Manager) []byte {
	t.Helper()
	k, err := m.Current()
	if err != nil {
		t.Fatal(err)
	}
	priv, ok := k.Private().(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("private key is %T", k.Private())
	}
	return priv.D.Bytes()
}

// A running instance picks up a key another instance made within its
// refresh interval, without a restart.
func TestRunPicksUpRotation(t *testing.T) {
	st := storetest.New(t, storetest.Backends()[0])
	c := &clock{now: time.Now()}
	opts := options(c, "ES256")
	opts.PrepublishPeriod = 0
	opts.RefreshInterval = 20 * time.Millisecond
	running, err := keys.New(context.Background(), st, secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { running.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	other, err := keys.New(context.Background(), st, secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := other.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.Add(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if k, err := running.Current(); err == nil && k.KID == info.KID {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the running instance did not pick up the rotation")
		}
		time.Sleep(10 * time.Millisecond) // polling: Run's goroutine reloads on its own schedule
	}
}

var (
	oldSecret     = secrets.ParseSystemSecrets("the-old-system-secret-0123456789-abcdef")
	rotatedSecret = secrets.ParseSystemSecrets("the-new-system-secret-0123456789-abcdef,the-old-system-secret-0123456789-abcdef")
)

// forge signs a token with a key recovered from a backup, as whoever holds
// the old secret would.
func forge(t *testing.T, jwk *jose.JSONWebKey, c *clock, lifetime time.Duration) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(jwk.Algorithm), Key: jwk},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	now := c.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Subject: "admin", IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(lifetime))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Rotating LATCHKEY_SECRET retires the signing keys (security.md, "Rotating
// LATCHKEY_SECRET"). The attack: someone holds the old secret and a backup
// made before the rotation. Starting with "new,old" must not leave them a
// key that signs: the key sealed under the old secret is replaced by one
// sealed under the new secret, signs only until its successor activates,
// stays published verify-only until its tokens have expired, then leaves;
// after that the new secret alone runs everything and nothing in the
// database opens with the old one.
func TestSecretRotation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &clock{now: time.Now().UTC()}
		opts := options(c, "ES256")
		before, err := keys.New(ctx, st, oldSecret, opts)
		if err != nil {
			t.Fatal(err)
		}
		oldTok, oldKID := sign(t, before)
		oldRS, _ := signWith(t, before, "RS256")
		if rowsOf(mustList(t, st), "ES256")[0].KID != oldKID {
			t.Fatal("access tokens are not signed with the ES256 key")
		}
		backup, err := st.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stolen, err := keys.UnsealWith(oldSecret, rowsOf(backup, "ES256")[0])
		if err != nil {
			t.Fatal(err)
		}
		oldKIDs := map[string]bool{}
		for _, row := range backup {
			oldKIDs[row.KID] = true
		}

		// Step 1: start with "new,old". Every chain gets a successor.
		rotated, err := keys.New(ctx, st, rotatedSecret, opts)
		if err != nil {
			t.Fatalf("the old secret in second place does not open the keys: %v", err)
		}
		var newKID string
		for _, alg := range keys.Algorithms {
			chain := ofAlg(rotated.List(), string(alg))
			if len(chain) != 2 || !oldKIDs[chain[0].KID] || chain[0].Sealed != "older secret" || chain[1].State != "pending" || chain[1].Sealed != "current secret" {
				t.Fatalf("%s after starting with new,old: %+v", alg, chain)
			}
			if alg == "ES256" {
				newKID = chain[1].KID
			}
		}
		rows, _ := st.ListSigningKeys(ctx)
		for _, row := range rows {
			if _, err := keys.UnsealWith(oldSecret, row); err == nil && !oldKIDs[row.KID] {
				t.Fatalf("the old secret opens the new %s signing key", row.Alg)
			}
		}
		// An instance still running with the old secret alone publishes the
		// new keys but cannot sign with them: it fails rather than sign with
		// a key about to leave the JWKS.
		if err := before.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if set := before.JWKS(); len(set.Keys) != 2*len(keys.Algorithms) {
			t.Fatalf("the old instance publishes %d keys", len(set.Keys))
		}

		c.Add(opts.PrepublishPeriod)
		newTok, kid := sign(t, rotated)
		if kid != newKID {
			t.Fatal("the replacement does not sign after pre-publication")
		}
		for _, alg := range keys.Algorithms {
			k, err := rotated.CurrentFor(alg)
			if err != nil {
				t.Fatal(err)
			}
			if oldKIDs[k.KID] {
				t.Fatalf("the %s key that signs now is in the backup made before the rotation", alg)
			}
			if _, err := before.CurrentFor(alg); !errors.Is(err, keys.ErrWrongSecret) {
				t.Fatalf("an old-secret instance after the %s replacement activated: %v, want ErrWrongSecret", alg, err)
			}
		}
		if _, err := before.Current(); !errors.Is(err, keys.ErrWrongSecret) {
			t.Fatalf("an old-secret instance after the replacement activated: %v, want ErrWrongSecret", err)
		}
		for name, tok := range map[string]string{"old": oldTok, "new": newTok, "old RS256": oldRS} {
			if !verifies(rotated, tok) {
				t.Fatalf("%s token: tokens from before and after the rotation must both verify while they live", name)
			}
		}

		// Once the replacements have signed for a minute the old keys are
		// verify-only: their private halves leave the database.
		c.Add(time.Minute)
		if err := rotated.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		rows, _ = st.ListSigningKeys(ctx)
		if len(rows) != 2*len(keys.Algorithms) {
			t.Fatalf("%d rows, want the old and the new key of each algorithm", len(rows))
		}
		for _, row := range rows {
			if oldKIDs[row.KID] && len(row.PrivateKey) != 0 {
				t.Fatalf("the retired %s key's private half is still stored", row.Alg)
			}
		}
		for _, info := range rotated.List() {
			if oldKIDs[info.KID] && (info.State != "retired" || info.Sealed != "erased") {
				t.Fatalf("retired key: %+v", info)
			}
		}
		if !verifies(rotated, oldTok) || !verifies(rotated, oldRS) {
			t.Fatal("a retired key stopped verifying before its tokens expired")
		}

		// The attacker's forgery verifies only while the old key is published.
		c.Add(opts.TokenTTL)
		if err := rotated.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if verifies(rotated, forge(t, stolen, c, opts.TokenTTL)) {
			t.Fatal("a token forged with the key from the backup verifies after the old key's tokens expired")
		}
		set := rotated.JWKS()
		if len(set.Keys) != len(keys.Algorithms) {
			t.Fatalf("JWKS after retirement: %+v", set.Keys)
		}
		for _, k := range set.Keys {
			if oldKIDs[k.KeyID] {
				t.Fatalf("the old %s key is still published", k.Algorithm)
			}
		}

		// Step 2: drop the old secret. Nothing stored opens with it.
		alone, err := keys.New(ctx, st, rotatedSecret[:1], opts)
		if err != nil {
			t.Fatalf("the new secret alone: %v", err)
		}
		if _, kid := sign(t, alone); kid != newKID {
			t.Fatal("the new secret alone signs with another key")
		}
		rows, _ = st.ListSigningKeys(ctx)
		for _, row := range rows {
			if _, err := keys.UnsealWith(oldSecret, row); err == nil {
				t.Fatalf("key %s still opens with the old secret", row.KID)
			}
		}
	})
}

// A key waiting to sign when the secret is rotated signed nothing: it is
// deleted, not resealed, and the replacement takes its place, in every chain.
func TestSecretRotationDropsWaitingKey(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &clock{now: time.Now().UTC()}
		before, err := keys.New(ctx, st, oldSecret, options(c, "ES256"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := before.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		waiting := map[string]bool{}
		for _, info := range before.List() {
			if info.State == "pending" {
				waiting[info.KID] = true
			}
		}
		rotated, err := keys.New(ctx, st, rotatedSecret, options(c, "ES256"))
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range rotated.List() {
			if waiting[info.KID] {
				t.Fatalf("a key waiting under the old secret survived: %+v", rotated.List())
			}
		}
		for _, alg := range keys.Algorithms {
			chain := ofAlg(rotated.List(), string(alg))
			if len(chain) != 2 || chain[1].Sealed != "current secret" || chain[1].State != "pending" {
				t.Fatalf("%s keys: %+v", alg, chain)
			}
		}
	})
}

// Instances that start together with "new,old" make one replacement key
// per algorithm between them, not one each.
func TestConcurrentSecretRotation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		c := &clock{now: time.Now().UTC()}
		if _, err := keys.New(ctx, storetest.Open(t, url, store.Options{}), oldSecret, options(c, "ES256")); err != nil {
			t.Fatal(err)
		}
		const n = 4
		var wg sync.WaitGroup
		managers := make([]*keys.Manager, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := keys.New(ctx, storetest.Open(t, url, store.Options{}), rotatedSecret, options(c, "ES256"))
				if err != nil {
					t.Error(err)
					return
				}
				managers[i] = m
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		rows, _ := storetest.Open(t, url, store.Options{}).ListSigningKeys(ctx)
		if len(rows) != 2*len(keys.Algorithms) {
			t.Fatalf("%d keys after %d instances started with new,old; want the old one and one replacement per algorithm", len(rows), n)
		}
		c.Add(10 * time.Minute)
		for _, m := range managers {
			if err := m.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			for _, alg := range keys.Algorithms {
				k, err := m.CurrentFor(alg)
				if err != nil {
					t.Fatal(err)
				}
				if k.KID != rowsOf(rows, string(alg))[1].KID {
					t.Fatalf("instances sign %s with different keys", alg)
				}
			}
		}
	})
}

// A chain that lost its keys (deleted by hand, or by an instance of the
// previous version, which sees one chain) is made again by maintenance,
// published before it signs.
func TestMaintainRestoresMissingChain(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Backends()[0])
	c := &clock{now: time.Now().UTC()}
	m := newManager(t, st, c, "ES256")
	for _, row := range rowsOf(mustList(t, st), "EdDSA") {
		if err := st.DeleteSigningKey(ctx, row.KID); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CurrentFor(jose.EdDSA); !errors.Is(err, keys.ErrNoSigningKey) {
		t.Fatalf("CurrentFor(EdDSA) without keys: %v", err)
	}
	if err := m.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if chain := ofAlg(m.List(), "EdDSA"); len(chain) != 1 || chain[0].State != "pending" {
		t.Fatalf("EdDSA after maintenance: %+v", chain)
	}
	if n := len(mustList(t, st)); n != len(keys.Algorithms) {
		t.Fatalf("%d keys after maintenance", n)
	}
	c.Add(10 * time.Minute)
	if tok, _ := signWith(t, m, "EdDSA"); !verifies(m, tok) {
		t.Fatal("the restored EdDSA chain does not sign after pre-publication")
	}
}
