// Package keys owns Latchkey's JWT signing keys (go-jose v4): it generates
// ES256, RS256 and EdDSA keys, seals private keys with AES-256-GCM before
// they reach the database, rotates them in stages, and keeps the decrypted
// signers in memory so the token path never reads or decrypts a key.
//
// There is one chain of keys per algorithm in Algorithms, so the JWKS
// always holds an active key of each: OpenID Connect clients choose the
// algorithm of their ID tokens (RS256 is mandatory for an OpenID
// Provider), and access tokens use the configured one (Options.Alg), which
// can therefore change at once. The chains live side by side and never
// touch each other: a key retires only when a newer key of its own
// algorithm activates.
//
// A key's life in its chain: it is published in the JWKS as soon as it is
// made, starts signing PrepublishPeriod later (so caches hold it before
// any token needs it), signs until the next key of its chain activates,
// and stays published until every token it signed has expired, after
// which it is deleted. Once a key has stopped signing its private half is
// erased: it is verify-only. Instances share keys through the database;
// creation happens under a lock so that instances starting together make
// one key per algorithm, not one each.
//
// A key sealed under an older LATCHKEY_SECRET (the second or later of a
// "new,old" list) is never sealed again under the new one: whoever holds the
// old secret and a backup could still open it. It is replaced instead, by a
// key of the same algorithm sealed under the new secret, and retires like
// any rotated key.
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
	// RefreshInterval is how often Run re-reads the keys (default 5s). On
	// PostgreSQL a change made by another instance (a revocation, an
	// emergency rotation, an import) is also announced, and Run reads the
	// keys again at once.
	RefreshInterval time.Duration
	// Reloaded, if set, is called after Run has read the keys again
	// because of such an announcement (tests wait on it).
	Reloaded func()
	Now      func() time.Time
	Logger   *slog.Logger
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
	// alg is the index of Options.Alg in Algorithms: the chain Current
	// answers from.
	alg int
	// keys holds the chains; replaced whole on reload, so the token path
	// reads it without a lock.
	keys   atomic.Pointer[keyset]
	reload sync.Mutex
	// changed wakes Run when another instance announced a key change.
	changed chan struct{}
}

// ErrWrongSecret means a stored private key cannot be opened with the
// configured LATCHKEY_SECRET.
var ErrWrongSecret = errors.New("LATCHKEY_SECRET does not decrypt the stored signing keys; was the secret changed?")

// ErrNoSigningKey means no key can sign now.
var ErrNoSigningKey = errors.New("no active signing key")

// New loads the keys, making the first key of every algorithm that has
// none: all of them signing at once on an empty database, published first
// and signing after PrepublishPeriod when other keys exist (an upgrade from
// one chain).
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
	m := &Manager{store: st, opts: opts, aeads: aeads, alg: algIndex(jose.SignatureAlgorithm(opts.Alg)), changed: make(chan struct{}, 1)}
	m.keys.Store(&keyset{})
	if n, ok := st.(changeNotifier); ok {
		// Never blocks the listener: one pending reload covers any number
		// of notices.
		n.OnSigningKeysChanged(func() {
			select {
			case m.changed <- struct{}{}:
			default:
			}
		})
	}
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	if m.missingChain() {
		err := st.WithSigningKeyLock(ctx, func(ctx context.Context) error {
			// Read again under the lock: another instance may have made
			// them first.
			rows, err := st.ListSigningKeys(ctx)
			if err != nil {
				return err
			}
			return m.addMissingChains(ctx, rows, m.opts.Now(), len(rows) == 0)
		})
		if err != nil {
			return nil, fmt.Errorf("create first signing keys: %w", err)
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
	return m.add(ctx, alg, priv, "", activatesAt)
}

// thumbprint is a public key's RFC 7638 thumbprint: stable, and the same on
// every instance.
func thumbprint(pub jose.JSONWebKey) (string, error) {
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(thumb), nil
}

// add seals and stores a private key, generated or imported, that signs
// from activatesAt; an empty kid means its thumbprint.
func (m *Manager) add(ctx context.Context, alg string, priv crypto.Signer, kid string, activatesAt time.Time) (*store.SigningKey, error) {
	pub := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
	if pub.KeyID == "" {
		var err error
		if pub.KeyID, err = thumbprint(pub); err != nil {
			return nil, err
		}
	}
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

// numAlgs is len(Algorithms): the chains live in an array indexed by
// algIndex, so that finding a chain is a switch, not a map lookup.
const numAlgs = 3

// algIndex is alg's place in Algorithms, or -1.
func algIndex(alg jose.SignatureAlgorithm) int {
	switch alg {
	case jose.ES256:
		return 0
	case jose.RS256:
		return 1
	case jose.EdDSA:
		return 2
	}
	return -1
}

// keyset is what Reload swaps in whole: one chain of keys per algorithm,
// each sorted by activation, oldest first. A chain is independent of the
// others: its keys retire only when a newer key of the same algorithm
// activates.
type keyset struct {
	chains [numAlgs][]*Key
}

// chainsOf splits stored rows, oldest activation first, into one chain per
// algorithm. Rows of an algorithm Latchkey does not make are left out:
// nothing here rotates or deletes what it does not understand.
func chainsOf(rows []store.SigningKey) [numAlgs][]store.SigningKey {
	var chains [numAlgs][]store.SigningKey
	for _, row := range rows {
		if i := algIndex(jose.SignatureAlgorithm(row.Alg)); i >= 0 {
			chains[i] = append(chains[i], row)
		}
	}
	return chains
}

// CurrentFor is the key that signs now with alg: the latest key of that
// algorithm's chain already active. It answers ErrNoSigningKey while the
// chain has no active key yet, which happens only for
// LATCHKEY_KEY_PREPUBLISH_PERIOD after an upgrade from a database that held
// keys of one algorithm (the new chains are published before they sign);
// the caller then signs with Current's key, which is published too. Like
// Current it fails, rather than sign with an older key, when the key that
// should sign is verify-only here. It allocates nothing when it succeeds.
func (m *Manager) CurrentFor(alg jose.SignatureAlgorithm) (*Key, error) {
	i := algIndex(alg)
	if i < 0 {
		return nil, fmt.Errorf("%w: unsupported algorithm %q", ErrNoSigningKey, alg)
	}
	k, err := current(m.keys.Load().chains[i], m.opts.Now())
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", alg, err)
	case k == nil:
		return nil, fmt.Errorf("%w for %s yet", ErrNoSigningKey, alg)
	}
	return k, nil
}

// current is the latest active key of a chain, or nil when the chain has
// no active key at all.
func current(chain []*Key, now time.Time) (*Key, error) {
	for i := len(chain) - 1; i >= 0; i-- {
		if chain[i].ActivatesAt.After(now) {
			continue
		}
		if chain[i].Signer == nil {
			return nil, fmt.Errorf("%w: signing key %s: %w", ErrNoSigningKey, chain[i].KID, ErrWrongSecret)
		}
		return chain[i], nil
	}
	return nil, nil
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
	// A key deleted from the database (revoked, or past its publication)
	// is not carried over: only the rows read now make the next keyset.
	known := map[string]*Key{}
	for _, chain := range m.keys.Load().chains {
		for _, k := range chain {
			known[k.KID] = k
		}
	}
	next := &keyset{}
	for _, row := range rows {
		i := algIndex(jose.SignatureAlgorithm(row.Alg))
		if i < 0 {
			return fmt.Errorf("signing key %s: unsupported algorithm %q", row.KID, row.Alg)
		}
		if k, ok := known[row.KID]; ok {
			if erased := len(row.PrivateKey) == 0; erased != k.erased {
				// Keep the signer in memory: a key erased by another
				// instance has stopped signing, give or take clock skew.
				cp := *k
				cp.erased = erased
				k = &cp
			}
			next.chains[i] = append(next.chains[i], k)
			continue
		}
		k, err := m.open(ctx, row)
		if err != nil {
			return err
		}
		next.chains[i] = append(next.chains[i], k)
	}
	m.keys.Store(next)
	return nil
}

// Current is the key that signs access tokens now: the current key of the
// configured algorithm (Options.Alg). It fails when that key is
// verify-only here, rather than sign with an older key whose publication
// may end before the token does. While the configured algorithm's chain
// has no active key yet (an upgrade from a one-algorithm database that
// also changed LATCHKEY_SIGNING_ALG: the new chain is still pre-published)
// it answers the active key of another algorithm, which is published and
// signs safely, so the token endpoint keeps working; from the chain's
// activation on, the configured algorithm signs. It allocates nothing.
func (m *Manager) Current() (*Key, error) {
	now := m.opts.Now()
	set := m.keys.Load()
	k, err := current(set.chains[m.alg], now)
	if k != nil || err != nil {
		return k, err
	}
	for i, chain := range set.chains {
		if i == m.alg {
			continue
		}
		if k, err := current(chain, now); k != nil && err == nil {
			return k, nil
		}
	}
	return nil, ErrNoSigningKey
}

// Schedule is how long the key that signs now has been signing, and when
// its successor is due to take over (its activation plus RotationPeriod):
// the metrics behind the "rotation overdue" alert. A rotation that stalls
// (a failing database, a stopped instance) lets the age pass the period.
func (m *Manager) Schedule() (age time.Duration, next time.Time, err error) {
	k, err := m.Current()
	if err != nil {
		return 0, time.Time{}, err
	}
	return m.opts.Now().Sub(k.ActivatesAt), k.ActivatesAt.Add(m.opts.RotationPeriod), nil
}

// publishedUntil is when a chain's key i leaves the JWKS: every token it
// signed has expired by then. The zero time means it is still needed. Only
// a newer key of the same chain retires a key.
func (m *Manager) publishedUntil(chain []*Key, i int, now time.Time) time.Time {
	for j := i + 1; j < len(chain); j++ {
		if !chain[j].ActivatesAt.After(now) {
			return chain[j].ActivatesAt.Add(m.opts.TokenTTL + retirementSkew)
		}
	}
	return time.Time{}
}

// Published returns the keys a verifier needs, chain by chain in the order
// of Algorithms: each chain's signing key, the ones about to sign, and
// retired ones whose tokens may still be valid.
func (m *Manager) Published() []*Key {
	now := m.opts.Now()
	set := m.keys.Load()
	out := make([]*Key, 0, 2*numAlgs)
	for _, chain := range set.chains {
		for i, k := range chain {
			if until := m.publishedUntil(chain, i, now); until.IsZero() || until.After(now) {
				out = append(out, k)
			}
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
	for _, chain := range m.keys.Load().chains {
		for i, k := range chain {
			if k.KID != kid {
				continue
			}
			if until := m.publishedUntil(chain, i, now); until.IsZero() || until.After(now) {
				return k, true
			}
			return nil, false
		}
	}
	return nil, false
}

// State names where a key is in its chain's life.
func (m *Manager) state(chain []*Key, i int, now time.Time) string {
	k := chain[i]
	switch {
	case k.ActivatesAt.After(now):
		return "pending"
	case m.publishedUntil(chain, i, now).IsZero():
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

// List describes every key in memory, chain by chain in the order of
// Algorithms (ES256, RS256, EdDSA), each chain oldest activation first.
func (m *Manager) List() []Info {
	now := m.opts.Now()
	set := m.keys.Load()
	n := 0
	for _, chain := range set.chains {
		n += len(chain)
	}
	out := make([]Info, 0, n)
	for _, chain := range set.chains {
		for i, k := range chain {
			out = append(out, Info{
				KID: k.KID, Alg: string(k.Alg), State: m.state(chain, i, now),
				CreatedAt: k.CreatedAt.UTC(), ActivatesAt: k.ActivatesAt.UTC(),
				PublishedUntil: m.publishedUntil(chain, i, now).UTC(), Sealed: k.sealedState(),
			})
		}
	}
	return out
}

// Rotate makes a new key of every algorithm now. Each is published at once
// and signs after the pre-publication period, so no cached JWKS misses it.
// A chain whose successor is already waiting keeps it rather than make a
// second one. The answer is the configured algorithm's new key (the one
// that will sign access tokens), as it was when there was one chain, so the
// admin API and CLI answers keep their shape; List shows every chain.
func (m *Manager) Rotate(ctx context.Context) (Info, error) {
	var kid string
	err := m.store.WithSigningKeyLock(ctx, func(ctx context.Context) error {
		rows, err := m.store.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		now := m.opts.Now()
		for i, chain := range chainsOf(rows) {
			k, err := m.rotateChain(ctx, string(Algorithms[i]), chain, now)
			if err != nil {
				return err
			}
			if i == m.alg {
				kid = k
			}
		}
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

// rotateChain gives one chain a waiting successor, unless it has one, and
// returns the successor's kid.
func (m *Manager) rotateChain(ctx context.Context, alg string, chain []store.SigningKey, now time.Time) (string, error) {
	activates := now.Add(m.opts.PrepublishPeriod)
	if n := len(chain); n > 0 {
		if chain[n-1].ActivatesAt.After(now) {
			return chain[n-1].KID, nil
		}
		activates = after(chain[n-1].ActivatesAt, activates)
	}
	row, err := m.create(ctx, alg, activates)
	if err != nil {
		return "", err
	}
	return row.KID, nil
}

// after keeps activation times strictly increasing within a chain, so "the
// latest active key" is never a tie. The step is a millisecond because
// PostgreSQL keeps microseconds and SQLite's text timestamps sort by their
// digits.
func after(prev, t time.Time) time.Time {
	if t.After(prev) {
		return t
	}
	return prev.Add(time.Millisecond)
}

// addMissingChains makes the first key of every algorithm that has none,
// under the key lock. On an empty table (first start) every first key
// signs at once: nothing can hold a cached JWKS yet. Otherwise (an upgrade
// from a database with keys of one algorithm, or a chain deleted by hand)
// the new key is published first and signs after the pre-publication
// period, since a cached JWKS may not hold it yet; until then
// CurrentFor(alg) answers ErrNoSigningKey. Nothing is made while a stored
// key is sealed under a secret this instance does not hold: an instance
// started with the wrong LATCHKEY_SECRET must fail, not add keys that the
// rest of the fleet cannot open.
func (m *Manager) addMissingChains(ctx context.Context, rows []store.SigningKey, now time.Time, firstStart bool) error {
	chains := chainsOf(rows)
	missing := false
	for _, chain := range chains {
		missing = missing || len(chain) == 0
	}
	if !missing {
		return nil
	}
	for _, row := range rows {
		if len(row.PrivateKey) > 0 && m.sealedBy(row) < 0 {
			m.opts.Logger.WarnContext(ctx, "not adding signing keys for the missing algorithms: a stored key is sealed under a LATCHKEY_SECRET this instance does not hold", "kid", row.KID)
			return nil
		}
	}
	activates := now.Add(m.opts.PrepublishPeriod)
	if firstStart {
		activates = now
	}
	for i, chain := range chains {
		if len(chain) > 0 {
			continue
		}
		if _, err := m.create(ctx, string(Algorithms[i]), activates); err != nil {
			return err
		}
	}
	return nil
}

// missingChain tells, from memory, whether an algorithm has no key.
func (m *Manager) missingChain() bool {
	for _, chain := range m.keys.Load().chains {
		if len(chain) == 0 {
			return true
		}
	}
	return false
}

// dueForRotation tells whether a chain needs a new key: it has none, or
// its current key's signing period ends within the pre-publication period
// and no successor is waiting.
func (m *Manager) dueForRotation(chain []*Key, now time.Time) bool {
	if len(chain) == 0 {
		return true
	}
	newest := chain[len(chain)-1]
	if newest.ActivatesAt.After(now) {
		return false
	}
	return !now.Before(newest.ActivatesAt.Add(m.opts.RotationPeriod - m.opts.PrepublishPeriod))
}

// secretRotationDue tells, from memory, whether a key sealed under an older
// LATCHKEY_SECRET still signs or waits to sign in any chain.
func (m *Manager) secretRotationDue() bool {
	now := m.opts.Now()
	for _, chain := range m.keys.Load().chains {
		for i, k := range chain {
			if k.sealedBy > 0 && (k.ActivatesAt.After(now) || i == len(chain)-1) {
				return true
			}
		}
	}
	return false
}

// superseded tells whether the key after i has been signing for longer than
// clocks differ: key i signs nowhere any more and needs no private half.
func superseded(next time.Time, now time.Time) bool {
	return !next.Add(retirementSkew).After(now)
}

// maintenanceDue tells, from memory and without a lock, whether Maintain
// has anything to do in any chain.
func (m *Manager) maintenanceDue(now time.Time) bool {
	if m.secretRotationDue() {
		return true
	}
	for _, chain := range m.keys.Load().chains {
		if m.dueForRotation(chain, now) {
			return true
		}
		for i := range chain {
			if until := m.publishedUntil(chain, i, now); !until.IsZero() && !until.After(now) {
				return true
			}
			if i+1 < len(chain) && !chain[i].erased && superseded(chain[i+1].ActivatesAt, now) {
				return true
			}
		}
	}
	return false
}

// Maintain, in every algorithm's chain on its own, rotates a key that is
// due, replaces keys sealed under an older secret, erases the private half
// of keys that stopped signing and deletes keys no token can need; it
// makes the first key of an algorithm that has none. Decisions are made
// again under the lock, so instances racing here make one key between them.
func (m *Manager) Maintain(ctx context.Context) error {
	now := m.opts.Now()
	if !m.maintenanceDue(now) {
		return nil
	}
	err := m.store.WithSigningKeyLock(ctx, func(ctx context.Context) error {
		rows, err := m.store.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		if err := m.addMissingChains(ctx, rows, now, false); err != nil {
			return err
		}
		for i, chain := range chainsOf(rows) {
			if err := m.maintainChain(ctx, string(Algorithms[i]), chain, now); err != nil {
				return fmt.Errorf("%s signing keys: %w", Algorithms[i], err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return m.Reload(ctx)
}

// maintainChain is Maintain's work on the stored keys of one algorithm,
// oldest activation first.
func (m *Manager) maintainChain(ctx context.Context, alg string, rows []store.SigningKey, now time.Time) error {
	rows, err := m.replaceOldSecretKeys(ctx, alg, rows, now)
	if err != nil {
		return err
	}
	if n := len(rows); n > 0 && !rows[n-1].ActivatesAt.After(now) {
		newest := rows[n-1]
		if !now.Before(newest.ActivatesAt.Add(m.opts.RotationPeriod - m.opts.PrepublishPeriod)) {
			activates := now.Add(m.opts.PrepublishPeriod)
			if scheduled := newest.ActivatesAt.Add(m.opts.RotationPeriod); scheduled.After(activates) {
				activates = scheduled
			}
			if _, err := m.create(ctx, alg, after(newest.ActivatesAt, activates)); err != nil {
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
				m.opts.Logger.InfoContext(ctx, "signing key removed", "kid", rows[i].KID, "alg", alg)
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
		m.opts.Logger.InfoContext(ctx, "retired signing key made verify-only", "kid", rows[i].KID, "alg", alg)
	}
	return nil
}

// replaceOldSecretKeys makes sure no key of one chain sealed under an older
// secret signs again: whoever holds that secret and a backup of the
// database could open it and sign tokens for any subject. A waiting one is
// deleted (it signed nothing); when the chain's newest key is one, a
// successor of the same algorithm sealed under the current secret is made,
// and the old key retires like any rotated key: published, verify-only,
// until the tokens it signed have expired. It runs under the key lock, so
// instances started together with "new,old" make one successor per chain
// between them. Keys sealed under a secret this instance does not hold are
// left alone: another instance's configuration is not this one's to
// override.
func (m *Manager) replaceOldSecretKeys(ctx context.Context, alg string, rows []store.SigningKey, now time.Time) ([]store.SigningKey, error) {
	kept := make([]store.SigningKey, 0, len(rows)+1)
	for _, row := range rows {
		if row.ActivatesAt.After(now) && m.sealedBy(row) > 0 {
			if err := m.store.DeleteSigningKey(ctx, row.KID); err != nil {
				return nil, err
			}
			m.opts.Logger.InfoContext(ctx, "waiting signing key sealed under an older LATCHKEY_SECRET deleted", "kid", row.KID, "alg", alg)
			continue
		}
		kept = append(kept, row)
	}
	n := len(kept)
	if n == 0 || m.sealedBy(kept[n-1]) <= 0 {
		return kept, nil
	}
	old := kept[n-1]
	row, err := m.create(ctx, alg, after(old.ActivatesAt, now.Add(m.opts.PrepublishPeriod)))
	if err != nil {
		return nil, err
	}
	m.opts.Logger.WarnContext(ctx, "LATCHKEY_SECRET was rotated: the signing key sealed under the old secret is replaced",
		"alg", alg, "old_kid", old.KID, "new_kid", row.KID, "signs_from", row.ActivatesAt.UTC(),
		"old_key_leaves_jwks_at", row.ActivatesAt.Add(m.opts.TokenTTL+retirementSkew).UTC())
	return append(kept, *row), nil
}

// Run keeps the keys current until ctx ends: every RefreshInterval it
// rotates or prunes when due and picks up keys other instances made, and
// on PostgreSQL it reads them again as soon as another instance announces a
// change.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
			// Another instance changed the keys: a revoked key must stop
			// verifying here now, not at the next tick.
			if err := m.Reload(ctx); err != nil && ctx.Err() == nil {
				m.opts.Logger.WarnContext(ctx, "signing key reload failed", "error", err)
			} else if m.opts.Reloaded != nil {
				m.opts.Reloaded()
			}
			continue
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
