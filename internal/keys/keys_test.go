package keys_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
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
			if len(set.Keys) != 1 || !set.Keys[0].IsPublic() || set.Keys[0].Use != "sig" || set.Keys[0].Algorithm != alg {
				t.Fatalf("JWKS %+v", set.Keys)
			}
		})
	}
	if _, err := keys.New(context.Background(), storetest.New(t, storetest.Backends()[0]), secret, options(&clock{now: time.Now()}, "HS256")); err == nil {
		t.Fatal("HS256 accepted")
	}
}

// Staged rotation: published before it signs; the old key keeps verifying
// its tokens until they expire, then leaves the JWKS and the database.
func TestStagedRotation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &clock{now: time.Now().UTC()}
		m := newManager(t, st, c, "ES256")
		oldTok, oldKID := sign(t, m)

		info, err := m.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State != "pending" || info.KID == oldKID {
			t.Fatalf("rotated key %+v", info)
		}
		if again, _ := m.Rotate(ctx); again.KID != info.KID {
			t.Fatal("a second rotation while one is pending made another key")
		}
		// Published at once, not yet signing.
		if set := m.JWKS(); len(set.Keys) != 2 {
			t.Fatalf("JWKS has %d keys during pre-publication", len(set.Keys))
		}
		if _, kid := sign(t, m); kid != oldKID {
			t.Fatal("the new key signed before its pre-publication ended")
		}

		c.Add(10 * time.Minute)
		newTok, newKID := sign(t, m)
		if newKID != info.KID {
			t.Fatal("the new key does not sign after pre-publication")
		}
		if !verifies(m, oldTok) || !verifies(m, newTok) {
			t.Fatal("old or new token does not verify right after rotation")
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
		if verifies(m, oldTok) {
			t.Fatal("the retired key is still published after its tokens expired")
		}
		rows, _ := st.ListSigningKeys(ctx)
		if len(rows) != 1 || rows[0].KID != newKID {
			t.Fatalf("keys left in the database: %d", len(rows))
		}
	})
}

func TestScheduledRotationAndAlgChange(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, storetest.Backends()[0])
	c := &clock{now: time.Now().UTC()}
	m := newManager(t, st, c, "ES256")
	_, first := sign(t, m)

	c.Add(23 * time.Hour)
	if err := m.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if list := m.List(); len(list) != 1 {
		t.Fatalf("rotated too early: %+v", list)
	}
	c.Add(50 * time.Minute) // within the pre-publication period of the end
	if err := m.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	list := m.List()
	if len(list) != 2 || list[1].State != "pending" {
		t.Fatalf("no successor published before the period ended: %+v", list)
	}
	c.Add(10 * time.Minute)
	if _, kid := sign(t, m); kid == first {
		t.Fatal("the successor does not sign when the period ends")
	}

	// A new LATCHKEY_SIGNING_ALG rotates to a key of that algorithm.
	rs := newManager(t, st, c, "RS256")
	if err := rs.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	list = rs.List()
	if last := list[len(list)-1]; last.Alg != "RS256" || last.State != "pending" {
		t.Fatalf("algorithm change: %+v", list)
	}
}

// Instances that start together on one empty database end with one key.
func TestConcurrentFirstKey(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		storetest.Open(t, url, store.Options{}) // migrate once
		c := &clock{now: time.Now()}
		const n = 4
		kids := make([]string, n)
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
				_, kids[i] = sign(t, m)
			}()
		}
		wg.Wait()
		for _, k := range kids[1:] {
			if k != kids[0] {
				t.Fatalf("instances sign with different keys: %v", kids)
			}
		}
		rows, _ := storetest.Open(t, url, store.Options{}).ListSigningKeys(context.Background())
		if len(rows) != 1 {
			t.Fatalf("%d keys made by %d instances", len(rows), n)
		}
	})
}

// The database holds the private key only sealed, and a wrong secret is a
// clear error rather than a crash.
func TestPrivateKeyAtRest(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		m := newManager(t, st, &clock{now: time.Now()}, "ES256")
		rows, err := st.ListSigningKeys(ctx)
		if err != nil || len(rows) != 1 {
			t.Fatal(err)
		}
		// Recover the private scalar the signer uses by opening the key
		// the way the manager does, then look for it in the raw row.
		stored := storetest.RawColumn(t, st, "signing_keys", "private_key")[0]
		d := privateScalar(t, m)
		if bytes.Contains([]byte(stored), d) {
			t.Fatal("the private key's bytes are in the database")
		}
		if bytes.Contains([]byte(stored), []byte(`"d":`)) {
			t.Fatal("the stored key holds a JWK in the clear")
		}
		_, err = keys.New(ctx, st, secrets.ParseSystemSecrets("another-secret-that-is-long-enough-000000"), options(&clock{now: time.Now()}, "ES256"))
		if !errors.Is(err, keys.ErrWrongSecret) {
			t.Fatalf("wrong secret: %v, want ErrWrongSecret", err)
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
		backup, err := st.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stolen, err := keys.UnsealWith(oldSecret, backup[0])
		if err != nil {
			t.Fatal(err)
		}

		// Step 1: start with "new,old".
		rotated, err := keys.New(ctx, st, rotatedSecret, opts)
		if err != nil {
			t.Fatalf("the old secret in second place does not open the keys: %v", err)
		}
		list := rotated.List()
		if len(list) != 2 || list[0].KID != oldKID || list[0].Sealed != "older secret" || list[1].State != "pending" || list[1].Sealed != "current secret" {
			t.Fatalf("after starting with new,old: %+v", list)
		}
		newKID := list[1].KID
		rows, _ := st.ListSigningKeys(ctx)
		if _, err := keys.UnsealWith(oldSecret, rows[1]); err == nil {
			t.Fatal("the old secret opens the new signing key")
		}
		// An instance still running with the old secret alone publishes the
		// new key but cannot sign with it: it fails rather than sign with a
		// key about to leave the JWKS.
		if err := before.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if set := before.JWKS(); len(set.Keys) != 2 {
			t.Fatalf("the old instance publishes %d keys", len(set.Keys))
		}

		c.Add(opts.PrepublishPeriod)
		newTok, kid := sign(t, rotated)
		if kid != newKID {
			t.Fatal("the replacement does not sign after pre-publication")
		}
		for _, row := range backup {
			if row.KID == kid {
				t.Fatal("the key that signs now is in the backup made before the rotation")
			}
		}
		if _, err := before.Current(); !errors.Is(err, keys.ErrWrongSecret) {
			t.Fatalf("an old-secret instance after the replacement activated: %v, want ErrWrongSecret", err)
		}
		if !verifies(rotated, oldTok) || !verifies(rotated, newTok) {
			t.Fatal("tokens from before and after the rotation must both verify while they live")
		}

		// Once the replacement has signed for a minute the old key is
		// verify-only: its private half leaves the database.
		c.Add(time.Minute)
		if err := rotated.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		rows, _ = st.ListSigningKeys(ctx)
		if len(rows) != 2 || rows[0].KID != oldKID || len(rows[0].PrivateKey) != 0 {
			t.Fatalf("the retired key's private half is still stored: %d rows", len(rows))
		}
		if l := rotated.List(); l[0].State != "retired" || l[0].Sealed != "erased" {
			t.Fatalf("retired key: %+v", l[0])
		}
		if !verifies(rotated, oldTok) {
			t.Fatal("the retired key stopped verifying before its tokens expired")
		}

		// The attacker's forgery verifies only while the old key is published.
		c.Add(opts.TokenTTL)
		if err := rotated.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if verifies(rotated, forge(t, stolen, c, opts.TokenTTL)) {
			t.Fatal("a token forged with the key from the backup verifies after the old key's tokens expired")
		}
		if set := rotated.JWKS(); len(set.Keys) != 1 || set.Keys[0].KeyID != newKID {
			t.Fatalf("JWKS after retirement: %+v", set.Keys)
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
// deleted, not resealed, and the replacement takes its place.
func TestSecretRotationDropsWaitingKey(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &clock{now: time.Now().UTC()}
		before, err := keys.New(ctx, st, oldSecret, options(c, "ES256"))
		if err != nil {
			t.Fatal(err)
		}
		waiting, err := before.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rotated, err := keys.New(ctx, st, rotatedSecret, options(c, "ES256"))
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range rotated.List() {
			if info.KID == waiting.KID {
				t.Fatalf("the key waiting under the old secret survived: %+v", rotated.List())
			}
		}
		list := rotated.List()
		if len(list) != 2 || list[1].Sealed != "current secret" || list[1].State != "pending" {
			t.Fatalf("keys: %+v", list)
		}
	})
}

// Instances that start together with "new,old" make one replacement key
// between them, not one each.
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
		if len(rows) != 2 {
			t.Fatalf("%d keys after %d instances started with new,old; want the old one and one replacement", len(rows), n)
		}
		c.Add(10 * time.Minute)
		for _, m := range managers {
			if err := m.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			if _, kid := sign(t, m); kid != rows[1].KID {
				t.Fatal("instances sign with different keys")
			}
		}
	})
}
