// Package keys owns Latchkey's JWT signing keys (go-jose v4): it generates
// ES256, RS256 and EdDSA keys, seals private keys with AES-256-GCM before
// they reach the database, rotates them in stages, and keeps the decrypted
// signers in memory so the token path never reads or decrypts a key.
//
// A key's life: it is published in the JWKS as soon as it is made, starts
// signing PrepublishPeriod later (so caches hold it before any token needs
// it), signs until the next key activates, and stays published until every
// token it signed has expired, after which it is deleted. Once a key has
// stopped signing its private half is erased: it is verify-only. Instances
// share keys through the database; creation happens under a lock so that
// instances starting together make one key, not one each.
//
// A key sealed under an older LATCHKEY_SECRET (the second or later of a
// "new,old" list) is never sealed again under the new one: whoever holds the
// old secret and a backup could still open it. It is replaced instead, by a
// key sealed under the new secret, and retires like any rotated key.
package keys

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// Supported signing algorithms.
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

// PurposeKeyEncryption derives the key that seals private keys at rest.
const PurposeKeyEncryption = "latchkey/v1/signing-key-encryption"

// retirementSkew is added to a retired key's publication so that clocks a
// little apart never see a valid token whose key has already gone.
const retirementSkew = time.Minute

// Options configure a Manager.
type Options struct {
	// Alg signs new keys: ES256, RS256 or EdDSA.
	Alg string
	// RotationPeriod is how long a key signs before the next one takes over.
	RotationPeriod time.Duration
	// PrepublishPeriod is how long a new key is published before it signs.
	PrepublishPeriod time.Duration
	// TokenTTL is the longest lifetime of a token a key signs; a retired key
	// stays published that long.
	TokenTTL time.Duration
	// RefreshInterval is how often Run re-reads the keys (default 5s).
	RefreshInterval time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
}

// Key is one signing key with its decrypted private half. Signer is nil for
// a verify-only key: one whose private half was erased after it retired, or
// one sealed under a secret this instance does not hold.
type Key struct {
	KID    string
	Alg    jose.SignatureAlgorithm
	Public jose.JSONWebKey
	Signer jose.Signer
	// signers holds a signer per JWT "typ" this key signs with (Sign).
	signers     map[string]jose.Signer
	private     any
	CreatedAt   time.Time
	ActivatesAt time.Time
	// sealedBy is the index in LATCHKEY_SECRET of the secret that opened
	// the key: 0 the current one, more an older one, -1 none.
	sealedBy int
	// erased is true once the stored private half has been deleted.
	erased bool
}

// Store is what the key manager needs of persistence; *store.Store
// satisfies it (asserted in internal/server).
type Store interface {
	// ListSigningKeys returns every key, oldest activation first.
	ListSigningKeys(ctx context.Context) ([]store.SigningKey, error)
	CreateSigningKey(ctx context.Context, k *store.SigningKey) error
	// EraseSigningKey deletes a key's sealed private half.
	EraseSigningKey(ctx context.Context, kid string) error
	DeleteSigningKey(ctx context.Context, kid string) error
	// WithSigningKeyLock runs fn in a transaction that holds the
	// key-management lock across instances.
	WithSigningKeyLock(ctx context.Context, fn func(ctx context.Context) error) error
}

// Manager holds the keys in memory and keeps them in step with the database.
type Manager struct {
	store Store
	// aeads[0] seals; every one opens, so keys sealed under an older
	// LATCHKEY_SECRET still load (and are sealed again under the new one).
	aeads []cipher.AEAD
	opts  Options
	// keys is sorted by activation, oldest first; replaced whole on reload.
	keys   atomic.Pointer[[]*Key]
	reload sync.Mutex
}

// ErrWrongSecret means a stored private key cannot be opened with the
// configured LATCHKEY_SECRET.
var ErrWrongSecret = errors.New("LATCHKEY_SECRET does not decrypt the stored signing keys; was the secret changed?")

// ErrNoSigningKey means no key can sign now.
var ErrNoSigningKey = errors.New("no active signing key")

// New loads the keys, making the first one if there is none.
func New(ctx context.Context, st Store, systemSecrets secrets.SystemSecrets, opts Options) (*Manager, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 5 * time.Second
	}
	if !validAlg(opts.Alg) {
		return nil, fmt.Errorf("unsupported signing algorithm %q", opts.Alg)
	}
	aeads, err := sealers(systemSecrets)
	if err != nil {
		return nil, err
	}
	m := &Manager{store: st, opts: opts, aeads: aeads}
	m.keys.Store(&[]*Key{})
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	if len(*m.keys.Load()) == 0 {
		err := st.WithSigningKeyLock(ctx, func(ctx context.Context) error {
			rows, err := st.ListSigningKeys(ctx)
			if err != nil || len(rows) > 0 {
				return err // another instance made it first
			}
			// Nothing can hold a cached JWKS yet, so the first key signs at once.
			_, err = m.create(ctx, opts.Alg, m.opts.Now())
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("create first signing key: %w", err)
		}
		if err := m.Reload(ctx); err != nil {
			return nil, err
		}
	}
	// Started with "new,old": replace the keys sealed under the old secret
	// now, not at the first maintenance tick.
	if m.secretRotationDue() {
		if err := m.Maintain(ctx); err != nil {
			return nil, fmt.Errorf("replace signing keys sealed under an older LATCHKEY_SECRET: %w", err)
		}
	}
	if _, err := m.Current(); err != nil {
		return nil, err
	}
	return m, nil
}

// sealers derives one AES-256-GCM key per secret, the current one first.
func sealers(ss secrets.SystemSecrets) ([]cipher.AEAD, error) {
	encKeys, err := ss.DeriveKeys(PurposeKeyEncryption)
	if err != nil {
		return nil, err
	}
	out := make([]cipher.AEAD, 0, len(encKeys))
	for _, k := range encKeys {
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		out = append(out, aead)
	}
	return out, nil
}

func validAlg(alg string) bool {
	for _, a := range Algorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// generate makes a key pair for alg.
func generate(alg string) (crypto.Signer, error) {
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

// create generates, seals and stores a key that signs from activatesAt.
func (m *Manager) create(ctx context.Context, alg string, activatesAt time.Time) (*store.SigningKey, error) {
	priv, err := generate(alg)
	if err != nil {
		return nil, err
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	// RFC 7638 thumbprint: stable, and the same on every instance.
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	privJWK := jose.JSONWebKey{Key: priv, KeyID: pub.KeyID, Algorithm: alg, Use: "sig"}
	privJSON, err := privJWK.MarshalJSON()
	if err != nil {
		return nil, err
	}
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return nil, err
	}
	sealed, err := m.seal(privJSON, pub.KeyID)
	if err != nil {
		return nil, err
	}
	row := &store.SigningKey{
		KID: pub.KeyID, Alg: alg, PublicKey: string(pubJSON), PrivateKey: sealed,
		CreatedAt: m.opts.Now(), ActivatesAt: activatesAt,
	}
	if err := m.store.CreateSigningKey(ctx, row); err != nil {
		return nil, err
	}
	m.opts.Logger.InfoContext(ctx, "signing key created", "kid", row.KID, "alg", alg, "activates_at", activatesAt.UTC())
	return row, nil
}

// seal encrypts a private key under the current secret. The kid is the
// additional data: a sealed key moved to another row does not open.
func (m *Manager) seal(plain []byte, kid string) ([]byte, error) {
	nonce := make([]byte, m.aeads[0].NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return m.aeads[0].Seal(nonce, nonce, plain, []byte(kid)), nil
}

// unseal opens a stored private key under any of the secrets and tells
// which one opened it (0 is the current secret).
func (m *Manager) unseal(row store.SigningKey) (plain []byte, secret int, err error) {
	for i, aead := range m.aeads {
		ns := aead.NonceSize()
		if len(row.PrivateKey) < ns {
			return nil, -1, fmt.Errorf("signing key %s: sealed key is truncated", row.KID)
		}
		if plain, err := aead.Open(nil, row.PrivateKey[:ns], row.PrivateKey[ns:], []byte(row.KID)); err == nil {
			return plain, i, nil
		}
	}
	return nil, -1, fmt.Errorf("signing key %s: %w", row.KID, ErrWrongSecret)
}

// sealedBy tells which of the secrets sealed a stored key, without keeping
// the plaintext: -1 for none of them, or an erased key.
func (m *Manager) sealedBy(row store.SigningKey) int {
	if len(row.PrivateKey) == 0 {
		return -1
	}
	_, i, err := m.unseal(row)
	if err != nil {
		return -1
	}
	return i
}

// open builds a key from its row. A key whose private half is erased, or
// sealed under a secret this instance does not hold, is verify-only: it
// still verifies the tokens it signed, and Current refuses to sign with it.
// A key sealed under an older secret is not sealed again under the new one
// (the old secret and a backup would still open it); Maintain replaces it.
func (m *Manager) open(ctx context.Context, row store.SigningKey) (*Key, error) {
	var pub jose.JSONWebKey
	if err := json.Unmarshal([]byte(row.PublicKey), &pub); err != nil {
		return nil, fmt.Errorf("signing key %s: decode public key: %w", row.KID, err)
	}
	alg := jose.SignatureAlgorithm(row.Alg)
	k := &Key{KID: row.KID, Alg: alg, Public: pub, CreatedAt: row.CreatedAt, ActivatesAt: row.ActivatesAt, sealedBy: -1}
	if len(row.PrivateKey) == 0 {
		k.erased = true
		return k, nil
	}
	plain, secret, err := m.unseal(row)
	if err != nil {
		m.opts.Logger.WarnContext(ctx, "signing key cannot be opened with LATCHKEY_SECRET; it only verifies here (restart with the secret list the other instances use)",
			"kid", row.KID, "error", err)
		return k, nil
	}
	var priv jose.JSONWebKey
	if err := json.Unmarshal(plain, &priv); err != nil {
		return nil, fmt.Errorf("signing key %s: decode private key: %w", row.KID, err)
	}
	k.signers = make(map[string]jose.Signer, len(jwtTypes))
	for _, typ := range jwtTypes {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: &priv},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", row.KID, err)
		}
		k.signers[typ] = signer
	}
	k.Signer, k.private, k.sealedBy = k.signers[TypAccessToken], priv.Key, secret
	return k, nil
}

// The "typ" header of each kind of JWT Latchkey signs.
const (
	// TypAccessToken: RFC 9068 §2.1.
	TypAccessToken = "at+jwt"
	// TypIDToken: Core 1.0 sets none; "JWT" is what every library accepts.
	TypIDToken = "JWT"
	// TypLogoutToken: Back-Channel Logout 1.0 §2.4.
	TypLogoutToken = "logout+jwt"
)

var jwtTypes = []string{TypAccessToken, TypIDToken, TypLogoutToken}

// Sign signs payload as a compact JWS with the given typ (one of the Typ
// constants). A verify-only key refuses.
func (k *Key) Sign(typ string, payload []byte) (string, error) {
	signer, ok := k.signers[typ]
	if !ok {
		if k.Signer == nil {
			return "", fmt.Errorf("signing key %s: %w", k.KID, ErrNoSigningKey)
		}
		return "", fmt.Errorf("signing key %s: unknown JWT type %q", k.KID, typ)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign with key %s: %w", k.KID, err)
	}
	return jws.CompactSerialize()
}

// CurrentFor is the key that signs now with alg. Until every algorithm has
// a key of its own, only the configured one signs; other algs answer
// ErrNoSigningKey.
func (m *Manager) CurrentFor(alg jose.SignatureAlgorithm) (*Key, error) {
	k, err := m.Current()
	if err != nil {
		return nil, err
	}
	if k.Alg != alg {
		return nil, fmt.Errorf("%w for %s", ErrNoSigningKey, alg)
	}
	return k, nil
}

// Reload re-reads the keys. Keys already in memory are kept as they are;
// only new ones are decrypted.
func (m *Manager) Reload(ctx context.Context) error {
	m.reload.Lock()
	defer m.reload.Unlock()
	rows, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	known := map[string]*Key{}
	for _, k := range *m.keys.Load() {
		known[k.KID] = k
	}
	next := make([]*Key, 0, len(rows))
	for _, row := range rows {
		if k, ok := known[row.KID]; ok {
			if erased := len(row.PrivateKey) == 0; erased != k.erased {
				// Keep the signer in memory: a key erased by another
				// instance has stopped signing, give or take clock skew.
				cp := *k
				cp.erased = erased
				k = &cp
			}
			next = append(next, k)
			continue
		}
		k, err := m.open(ctx, row)
		if err != nil {
			return err
		}
		next = append(next, k)
	}
	m.keys.Store(&next)
	return nil
}

// Current is the key that signs now: the latest one already active. It
// fails when that key is verify-only here, rather than sign with an older
// key whose publication may end before the token does.
func (m *Manager) Current() (*Key, error) {
	now := m.opts.Now()
	keys := *m.keys.Load()
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i].ActivatesAt.After(now) {
			continue
		}
		if keys[i].Signer == nil {
			return nil, fmt.Errorf("%w: signing key %s: %w", ErrNoSigningKey, keys[i].KID, ErrWrongSecret)
		}
		return keys[i], nil
	}
	return nil, ErrNoSigningKey
}

// publishedUntil is when a key leaves the JWKS: every token it signed has
// expired by then. The zero time means it is still needed.
func (m *Manager) publishedUntil(keys []*Key, i int, now time.Time) time.Time {
	for j := i + 1; j < len(keys); j++ {
		if !keys[j].ActivatesAt.After(now) {
			return keys[j].ActivatesAt.Add(m.opts.TokenTTL + retirementSkew)
		}
	}
	return time.Time{}
}

// Published returns the keys a verifier needs: the signing key, the ones
// about to sign, and retired ones whose tokens may still be valid.
func (m *Manager) Published() []*Key {
	now := m.opts.Now()
	keys := *m.keys.Load()
	out := make([]*Key, 0, len(keys))
	for i, k := range keys {
		if until := m.publishedUntil(keys, i, now); until.IsZero() || until.After(now) {
			out = append(out, k)
		}
	}
	return out
}

// JWKS is the public key set served at /.well-known/jwks.json.
func (m *Manager) JWKS() jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, k := range m.Published() {
		set.Keys = append(set.Keys, k.Public)
	}
	return set
}

// Lookup finds a published key by kid; tokens signed by anything else fail.
// It allocates nothing: introspection calls it for every token.
func (m *Manager) Lookup(kid string) (*Key, bool) {
	now := m.opts.Now()
	keys := *m.keys.Load()
	for i, k := range keys {
		if k.KID != kid {
			continue
		}
		if until := m.publishedUntil(keys, i, now); until.IsZero() || until.After(now) {
			return k, true
		}
		return nil, false
	}
	return nil, false
}

// State names where a key is in its life.
func (m *Manager) state(keys []*Key, i int, now time.Time) string {
	k := keys[i]
	switch {
	case k.ActivatesAt.After(now):
		return "pending"
	case m.publishedUntil(keys, i, now).IsZero():
		return "active"
	default:
		return "retired"
	}
}

// Info describes a key for the admin API and the CLI.
type Info struct {
	KID            string    `json:"kid"`
	Alg            string    `json:"alg"`
	State          string    `json:"state"`
	CreatedAt      time.Time `json:"created_at"`
	ActivatesAt    time.Time `json:"activates_at"`
	PublishedUntil time.Time `json:"published_until,omitzero"`
	// Sealed says what guards the private half: "current secret", "older
	// secret" (replaced at the next maintenance), "unknown secret" (another
	// LATCHKEY_SECRET sealed it) or "erased" (verify-only).
	Sealed string `json:"sealed"`
}

func (k *Key) sealedState() string {
	switch {
	case k.erased:
		return "erased"
	case k.sealedBy == 0:
		return "current secret"
	case k.sealedBy > 0:
		return "older secret"
	default:
		return "unknown secret"
	}
}

// List describes every key in memory.
func (m *Manager) List() []Info {
	now := m.opts.Now()
	keys := *m.keys.Load()
	out := make([]Info, 0, len(keys))
	for i, k := range keys {
		out = append(out, Info{
			KID: k.KID, Alg: string(k.Alg), State: m.state(keys, i, now),
			CreatedAt: k.CreatedAt.UTC(), ActivatesAt: k.ActivatesAt.UTC(),
			PublishedUntil: m.publishedUntil(keys, i, now).UTC(), Sealed: k.sealedState(),
		})
	}
	return out
}

// Rotate makes a new key now. It is published at once and signs after the
// pre-publication period, so no cached JWKS misses it. A key already
// waiting to activate is returned instead of making a second one.
func (m *Manager) Rotate(ctx context.Context) (Info, error) {
	var kid string
	err := m.store.WithSigningKeyLock(ctx, func(ctx context.Context) error {
		rows, err := m.store.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		now := m.opts.Now()
		activates := now.Add(m.opts.PrepublishPeriod)
		if n := len(rows); n > 0 {
			if rows[n-1].ActivatesAt.After(now) {
				kid = rows[n-1].KID
				return nil
			}
			activates = after(rows[n-1].ActivatesAt, activates)
		}
		row, err := m.create(ctx, m.opts.Alg, activates)
		if err != nil {
			return err
		}
		kid = row.KID
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	if err := m.Reload(ctx); err != nil {
		return Info{}, err
	}
	for _, info := range m.List() {
		if info.KID == kid {
			return info, nil
		}
	}
	return Info{}, fmt.Errorf("rotated key %s not found after reload", kid)
}

// after keeps activation times strictly increasing, so "the latest active
// key" is never a tie. The step is a millisecond because PostgreSQL keeps
// microseconds and SQLite's text timestamps sort by their digits.
func after(prev, t time.Time) time.Time {
	if t.After(prev) {
		return t
	}
	return prev.Add(time.Millisecond)
}

// dueForRotation tells, from memory, whether a new key should be made: the
// current key's signing period ends within the pre-publication period, or
// it has the wrong algorithm, and no successor is waiting.
func (m *Manager) dueForRotation(now time.Time) bool {
	keys := *m.keys.Load()
	if len(keys) == 0 {
		return true
	}
	newest := keys[len(keys)-1]
	if newest.ActivatesAt.After(now) {
		return false
	}
	if string(newest.Alg) != m.opts.Alg {
		return true
	}
	return !now.Before(newest.ActivatesAt.Add(m.opts.RotationPeriod - m.opts.PrepublishPeriod))
}

// secretRotationDue tells, from memory, whether a key sealed under an older
// LATCHKEY_SECRET still signs or waits to sign.
func (m *Manager) secretRotationDue() bool {
	now := m.opts.Now()
	keys := *m.keys.Load()
	for i, k := range keys {
		if k.sealedBy > 0 && (k.ActivatesAt.After(now) || i == len(keys)-1) {
			return true
		}
	}
	return false
}

// superseded tells whether the key after i has been signing for longer than
// clocks differ: key i signs nowhere any more and needs no private half.
func superseded(next time.Time, now time.Time) bool {
	return !next.Add(retirementSkew).After(now)
}

// Maintain rotates a key that is due, replaces keys sealed under an older
// secret, erases the private half of keys that stopped signing and deletes
// keys no token can need. Decisions are made again under the lock, so
// instances racing here make one key between them.
func (m *Manager) Maintain(ctx context.Context) error {
	now := m.opts.Now()
	keys := *m.keys.Load()
	work := m.dueForRotation(now) || m.secretRotationDue()
	for i := range keys {
		if until := m.publishedUntil(keys, i, now); !until.IsZero() && !until.After(now) {
			work = true
		}
		if i+1 < len(keys) && !keys[i].erased && superseded(keys[i+1].ActivatesAt, now) {
			work = true
		}
	}
	if !work {
		return nil
	}
	err := m.store.WithSigningKeyLock(ctx, func(ctx context.Context) error {
		rows, err := m.store.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		if rows, err = m.replaceOldSecretKeys(ctx, rows, now); err != nil {
			return err
		}
		if n := len(rows); n > 0 && !rows[n-1].ActivatesAt.After(now) {
			newest := rows[n-1]
			due := !now.Before(newest.ActivatesAt.Add(m.opts.RotationPeriod - m.opts.PrepublishPeriod))
			if due || newest.Alg != m.opts.Alg {
				activates := now.Add(m.opts.PrepublishPeriod)
				if scheduled := newest.ActivatesAt.Add(m.opts.RotationPeriod); due && scheduled.After(activates) {
					activates = scheduled
				}
				activates = after(newest.ActivatesAt, activates)
				if _, err := m.create(ctx, m.opts.Alg, activates); err != nil {
					return err
				}
			}
		}
		deleted := map[string]bool{}
		// A key is deleted once the key that retired it has been active for
		// longer than any token lives: nothing it signed is still valid.
		for i := 0; i+1 < len(rows); i++ {
			for j := i + 1; j < len(rows); j++ {
				if rows[j].ActivatesAt.After(now) {
					continue
				}
				if !rows[j].ActivatesAt.Add(m.opts.TokenTTL + retirementSkew).After(now) {
					if err := m.store.DeleteSigningKey(ctx, rows[i].KID); err != nil {
						return err
					}
					deleted[rows[i].KID] = true
					m.opts.Logger.InfoContext(ctx, "signing key removed", "kid", rows[i].KID)
				}
				break
			}
		}
		// A key that stopped signing only verifies: its private half is
		// erased, so that no copy of the database made from now on, under
		// whatever secret, can be used to sign with it.
		for i := 0; i+1 < len(rows); i++ {
			if deleted[rows[i].KID] || len(rows[i].PrivateKey) == 0 || !superseded(rows[i+1].ActivatesAt, now) {
				continue
			}
			if err := m.store.EraseSigningKey(ctx, rows[i].KID); err != nil {
				return err
			}
			m.opts.Logger.InfoContext(ctx, "retired signing key made verify-only", "kid", rows[i].KID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return m.Reload(ctx)
}

// replaceOldSecretKeys makes sure no key sealed under an older secret signs
// again: whoever holds that secret and a backup of the database could open
// it and sign tokens for any subject. A waiting one is deleted (it signed
// nothing); when the newest key is one, a successor sealed under the
// current secret is made, and the old key retires like any rotated key:
// published, verify-only, until the tokens it signed have expired. It runs
// under the key lock, so instances started together with "new,old" make
// one successor between them. Keys sealed under a secret this instance
// does not hold are left alone: another instance's configuration is not
// this one's to override.
func (m *Manager) replaceOldSecretKeys(ctx context.Context, rows []store.SigningKey, now time.Time) ([]store.SigningKey, error) {
	kept := make([]store.SigningKey, 0, len(rows)+1)
	for _, row := range rows {
		if row.ActivatesAt.After(now) && m.sealedBy(row) > 0 {
			if err := m.store.DeleteSigningKey(ctx, row.KID); err != nil {
				return nil, err
			}
			m.opts.Logger.InfoContext(ctx, "waiting signing key sealed under an older LATCHKEY_SECRET deleted", "kid", row.KID)
			continue
		}
		kept = append(kept, row)
	}
	n := len(kept)
	if n == 0 || m.sealedBy(kept[n-1]) <= 0 {
		return kept, nil
	}
	old := kept[n-1]
	row, err := m.create(ctx, m.opts.Alg, after(old.ActivatesAt, now.Add(m.opts.PrepublishPeriod)))
	if err != nil {
		return nil, err
	}
	m.opts.Logger.WarnContext(ctx, "LATCHKEY_SECRET was rotated: the signing key sealed under the old secret is replaced",
		"old_kid", old.KID, "new_kid", row.KID, "signs_from", row.ActivatesAt.UTC(),
		"old_key_leaves_jwks_at", row.ActivatesAt.Add(m.opts.TokenTTL+retirementSkew).UTC())
	return append(kept, *row), nil
}

// Run keeps the keys current until ctx ends: every RefreshInterval it
// rotates or prunes when due and picks up keys other instances made.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.Maintain(ctx); err != nil && ctx.Err() == nil {
			m.opts.Logger.WarnContext(ctx, "signing key maintenance failed", "error", err)
		}
		if err := m.Reload(ctx); err != nil && ctx.Err() == nil {
			m.opts.Logger.WarnContext(ctx, "signing key reload failed", "error", err)
		}
	}
}
