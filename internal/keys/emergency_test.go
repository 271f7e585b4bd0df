package keys_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
)

// An emergency rotation: the new key of every algorithm signs at once,
// with no pre-publication and no clock moving; the old keys stay
// published, verify-only once superseded, until their tokens have expired;
// a key that was waiting to sign is dropped.
func TestRotateNow(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &clock{now: time.Now()}
		m := newManager(t, st, c, "ES256")
		oldTok, oldKID := sign(t, m)
		c.Add(time.Second)
		waiting, err := m.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		info, err := m.RotateNow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State != "active" || info.KID == oldKID || info.KID == waiting.KID {
			t.Fatalf("emergency key %+v: want a new active key", info)
		}
		if _, kid := sign(t, m); kid != info.KID {
			t.Fatalf("the next token is signed by %s, want the emergency key %s", kid, info.KID)
		}
		for _, alg := range keys.Algorithms {
			chain := ofAlg(m.List(), string(alg))
			// PostgreSQL keeps microseconds.
			if last := chain[len(chain)-1]; last.State != "active" || last.ActivatesAt.After(c.Now()) || c.Now().Sub(last.ActivatesAt) > time.Millisecond {
				t.Fatalf("%s: newest key %+v, want one signing from now", alg, last)
			}
			for _, k := range chain {
				if k.State == "pending" {
					t.Fatalf("%s: a waiting key survived the emergency rotation: %+v", alg, k)
				}
			}
		}
		if !verifies(m, oldTok) {
			t.Fatal("a token signed before the emergency rotation stopped verifying")
		}
		old := ofAlg(m.List(), "ES256")[0]
		if old.KID != oldKID || old.State != "retired" || !old.PublishedUntil.Equal(info.ActivatesAt.Add(15*time.Minute+time.Minute)) {
			t.Fatalf("old key %+v: want retired, published until its tokens expire", old)
		}
		// Past the token lifetime the old key leaves the JWKS and the
		// database.
		c.Add(17 * time.Minute)
		if err := m.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if verifies(m, oldTok) {
			t.Fatal("the old key outlived its tokens")
		}
		for _, row := range mustList(t, st) {
			if row.KID == oldKID {
				t.Fatal("the old key is still stored")
			}
		}
	})
}

// Revoking a compromised signing key: it leaves the JWKS and its tokens
// stop verifying here at once and, on PostgreSQL, on another instance as
// soon as the change is announced (its refresh interval is an hour, so
// only the announcement can explain it); on SQLite at that instance's next
// reload. A new key signs in its place.
func TestRevoke(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		st := storetest.Open(t, url, store.Options{})
		c := &clock{now: time.Now()}
		m := newManager(t, st, c, "ES256")
		reloaded := make(chan struct{}, 8)
		opts := options(c, "ES256")
		opts.RefreshInterval = time.Hour
		opts.Reloaded = func() { reloaded <- struct{}{} }
		other, err := keys.New(ctx, storetest.Open(t, url, store.Options{}), secret, opts)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { other.Run(runCtx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })

		tok, kid := sign(t, m)
		idTok, rsKID := signWith(t, m, "RS256")
		c.Add(time.Second)
		if !verifies(other, tok) {
			t.Fatal("the other instance does not verify a valid token")
		}
		rev, err := m.Revoke(ctx, kid)
		if err != nil {
			t.Fatal(err)
		}
		if rev.Revoked.KID != kid || rev.Revoked.State != "revoked" || rev.ReplacedBy == nil || rev.ReplacedBy.State != "active" {
			t.Fatalf("revocation %+v: want the key revoked and an active replacement", rev)
		}
		if set := m.JWKS(); verifies(m, tok) || len(set.Key(kid)) > 0 {
			t.Fatal("the revoked key is still published here")
		}
		if _, ok := m.Lookup(kid); ok {
			t.Fatal("Lookup still finds the revoked key")
		}
		if _, now := sign(t, m); now != rev.ReplacedBy.KID {
			t.Fatalf("signing with %s after the revocation, want the replacement %s", now, rev.ReplacedBy.KID)
		}
		if st.Dialect() == store.DialectPostgres {
			// The listener's start also makes a reload: wait for the one
			// that saw the revocation.
			timeout := time.After(10 * time.Second)
			for _, ok := other.Lookup(kid); ok; _, ok = other.Lookup(kid) {
				select {
				case <-reloaded:
				case <-timeout:
					t.Fatal("the other instance was not told of the revocation")
				}
			}
		} else if err := other.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := other.Lookup(kid); ok || verifies(other, tok) {
			t.Fatal("the revoked key still verifies on the other instance")
		}
		if k, err := other.Current(); err != nil || k.KID != rev.ReplacedBy.KID {
			t.Fatalf("the other instance signs with %v (%v), want the replacement", k, err)
		}
		// Other algorithms are untouched.
		if !verifies(other, idTok) {
			t.Fatalf("revoking an ES256 key broke the RS256 key %s", rsKID)
		}
		if _, err := m.Revoke(ctx, kid); !errors.Is(err, keys.ErrUnknownKey) || !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoking it again: %v, want ErrUnknownKey (not found)", err)
		}
	})
}

// Revoking a key that does not sign (retired, or still waiting) makes no
// new key: the chain's signer keeps signing.
func TestRevokeNonSigningKey(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &clock{now: time.Now()}
		m := newManager(t, st, c, "ES256")
		_, first := sign(t, m)
		c.Add(time.Second)
		if _, err := m.RotateNow(ctx); err != nil {
			t.Fatal(err)
		}
		waiting, err := m.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, signer := sign(t, m)
		before := len(mustList(t, st))
		for _, kid := range []string{first, waiting.KID} {
			rev, err := m.Revoke(ctx, kid)
			if err != nil {
				t.Fatal(err)
			}
			if rev.ReplacedBy != nil {
				t.Fatalf("revoking non-signing %s made a new key %s", kid, rev.ReplacedBy.KID)
			}
		}
		if _, now := sign(t, m); now != signer {
			t.Fatalf("signer changed from %s to %s", signer, now)
		}
		if after := len(mustList(t, st)); after != before-2 {
			t.Fatalf("%d keys stored, want %d", after, before-2)
		}
	})
}

// pemOf encodes a key as a PEM block.
func pemOf(t *testing.T, typ string, der []byte, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8(t *testing.T, k any) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	return pemOf(t, "PRIVATE KEY", der, err)
}

func jwkOf(t *testing.T, k jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Imported keys of every form and algorithm sign, with --now, at once, and
// what they sign verifies against the JWKS with go-jose; the kid is the
// thumbprint unless given; the private half is sealed at rest.
func TestImport(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecKey2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	sec1, err := x509.MarshalECPrivateKey(ecKey2)
	cases := []struct {
		name, alg, kid string
		material       []byte
		priv           any
	}{
		{"PKCS8 RSA", "RS256", "", pkcs8(t, rsaKey), rsaKey},
		{"PKCS1 RSA", "", "hsm-rsa-1", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), nil), rsaKey},
		{"PKCS8 EC", "", "", pkcs8(t, ecKey), ecKey},
		{"SEC1 EC", "ES256", "", append(pemOf(t, "EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}, nil), pemOf(t, "EC PRIVATE KEY", sec1, err)...), ecKey2},
		{"PKCS8 Ed25519", "", "", pkcs8(t, edKey), edKey},
		{"JWK EC", "", "", jwkOf(t, jose.JSONWebKey{Key: ecKey, Algorithm: "ES256"}), ecKey},
		{"JWK Ed25519", "EdDSA", "ed.2", jwkOf(t, jose.JSONWebKey{Key: edKey}), edKey},
	}
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				st := storetest.New(t, b)
				c := &clock{now: time.Now()}
				m := newManager(t, st, c, "ES256")
				// An operator acts a moment after the first keys were made.
				c.Add(time.Second)
				info, err := m.Import(ctx, tc.material, keys.ImportOptions{Alg: tc.alg, KID: tc.kid, Now: true})
				if err != nil {
					t.Fatal(err)
				}
				pub := jose.JSONWebKey{Key: tc.priv.(crypto.Signer).Public()}
				thumb, _ := pub.Thumbprint(crypto.SHA256)
				wantKID := tc.kid
				if wantKID == "" {
					wantKID = base64.RawURLEncoding.EncodeToString(thumb)
				}
				if info.KID != wantKID || info.State != "active" || info.Sealed != "current secret" {
					t.Fatalf("imported %+v, want kid %s active and sealed", info, wantKID)
				}
				tok, kid := signWith(t, m, info.Alg)
				if kid != info.KID {
					t.Fatalf("%s signs with %s, want the imported %s", info.Alg, kid, info.KID)
				}
				// A standard verifier: the published JWKS, go-jose.
				parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(info.Alg)})
				if err != nil {
					t.Fatal(err)
				}
				set := m.JWKS()
				var claims jwt.Claims
				if ks := set.Key(kid); len(ks) != 1 || parsed.Claims(ks[0].Key, &claims) != nil || claims.Subject != "s" {
					t.Fatal("a token signed by the imported key does not verify against the JWKS")
				}
				for _, k := range set.Keys {
					if !k.IsPublic() {
						t.Fatal("the JWKS publishes a private key")
					}
				}
				for _, stored := range storetest.RawColumn(t, st, "signing_keys", "private_key") {
					if strings.Contains(stored, `"d":`) || strings.Contains(stored, "PRIVATE KEY") {
						t.Fatal("the imported key is stored in the clear")
					}
				}
				if _, err := m.Import(ctx, tc.material, keys.ImportOptions{Alg: tc.alg}); !errors.Is(err, keys.ErrKeyExists) {
					t.Fatalf("importing it twice: %v, want ErrKeyExists", err)
				}
			})
		}
	})
}

// Without --now an imported key is published first and signs after the
// pre-publication period; it takes the place of a waiting key.
func TestImportPrepublished(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st := storetest.New(t, b)
		c := &clock{now: time.Now()}
		m := newManager(t, st, c, "ES256")
		_, signer := sign(t, m)
		waiting, err := m.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		info, err := m.Import(ctx, pkcs8(t, k), keys.ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if set := m.JWKS(); info.State != "pending" || len(set.Key(info.KID)) != 1 {
			t.Fatalf("imported %+v, want published and pending", info)
		}
		for _, i := range m.List() {
			if i.KID == waiting.KID {
				t.Fatal("the waiting key was kept beside the imported one")
			}
		}
		if _, now := sign(t, m); now != signer {
			t.Fatal("the imported key signs before its pre-publication ends")
		}
		c.Add(10*time.Minute + time.Second)
		if _, now := sign(t, m); now != info.KID {
			t.Fatalf("after pre-publication %s signs, want the imported %s", now, info.KID)
		}
	})
}

// Keys that cannot be used are refused with a reason that never quotes
// the key.
func TestImportRefused(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(ec.Public())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, ec.Public(), ec)
	if err != nil {
		t.Fatal(err)
	}
	// An EC JWK whose public point is another key's.
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mismatched := map[string]string{}
	_ = json.Unmarshal(jwkOf(t, jose.JSONWebKey{Key: ec}), &mismatched)
	other := map[string]string{}
	_ = json.Unmarshal(jwkOf(t, jose.JSONWebKey{Key: ec2.Public()}), &other)
	mismatched["x"], mismatched["y"] = other["x"], other["y"]
	mismatchedJWK, _ := json.Marshal(mismatched)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1}})
	cases := []struct {
		name     string
		material []byte
		opts     keys.ImportOptions
		want     string
	}{
		{"RSA 1024", pkcs8(t, small), keys.ImportOptions{}, "at least 2048"},
		{"P-384", pkcs8(t, p384), keys.ImportOptions{}, "P-256"},
		{"public PEM", pemOf(t, "PUBLIC KEY", pubDER, nil), keys.ImportOptions{}, "not a private key"},
		{"certificate", pemOf(t, "CERTIFICATE", certDER, nil), keys.ImportOptions{}, "not a private key"},
		{"public JWK", jwkOf(t, jose.JSONWebKey{Key: ec.Public()}), keys.ImportOptions{}, "public key only"},
		{"symmetric JWK", []byte(`{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}`), keys.ImportOptions{}, "symmetric"},
		{"alg mismatch", pkcs8(t, ec), keys.ImportOptions{Alg: "RS256"}, "ES256 key"},
		{"JWK alg mismatch", jwkOf(t, jose.JSONWebKey{Key: ec, Algorithm: "EdDSA"}), keys.ImportOptions{}, "says alg"},
		{"unknown alg", pkcs8(t, ec), keys.ImportOptions{Alg: "HS256"}, "not one of"},
		{"halves mismatch", mismatchedJWK, keys.ImportOptions{}, "do not belong together"},
		{"encrypted PEM", encrypted, keys.ImportOptions{}, "encrypted"},
		{"garbage", []byte("not a key"), keys.ImportOptions{}, "no PEM block"},
		{"corrupt PKCS8", pemOf(t, "PRIVATE KEY", []byte{0x30, 1, 2}, nil), keys.ImportOptions{}, "PKCS #8"},
		{"bad kid", pkcs8(t, ec), keys.ImportOptions{KID: "a/b"}, "kid"},
	}
	st := storetest.New(t, storetest.Backends()[0])
	m := newManager(t, st, &clock{now: time.Now()}, "ES256")
	before := len(mustList(t, st))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Import(context.Background(), tc.material, tc.opts)
			if !errors.Is(err, keys.ErrInvalidKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidKey saying %q", err, tc.want)
			}
			if len(tc.material) > 40 && strings.Contains(err.Error(), string(tc.material[20:40])) {
				t.Fatal("the error quotes the key")
			}
		})
	}
	if after := len(mustList(t, st)); after != before {
		t.Fatalf("refused imports stored keys: %d rows, want %d", after, before)
	}
}
