package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/latchkey/latchkey/internal/store"
)

// The operator's key operations: an emergency rotation, the revocation of a
// compromised key and the import of a key brought from elsewhere. Each
// changes the keys under the key lock and announces the change (on
// PostgreSQL) before the lock's transaction commits, so every instance reads
// the keys again as soon as the change is visible; on SQLite the others
// read them within Options.RefreshInterval.

// ErrUnknownKey means no stored key has the kid asked for. It wraps
// store.ErrNotFound, which the admin API answers with 404.
var ErrUnknownKey = fmt.Errorf("no signing key with that kid: %w", store.ErrNotFound)

// ErrKeyExists means an imported key's kid is already taken.
var ErrKeyExists = errors.New("a signing key with that kid already exists")

// changeNotifier is what *store.Store offers to carry key changes to every
// instance at once; a Store without it leaves that to the refresh interval.
type changeNotifier interface {
	NotifySigningKeysChanged(ctx context.Context) error
	OnSigningKeysChanged(fn func())
}

// change runs fn on the stored keys under the key lock, announces the
// change to the other instances and reads the keys again here.
func (m *Manager) change(ctx context.Context, fn func(ctx context.Context, rows []store.SigningKey, now time.Time) error) error {
	err := m.store.WithSigningKeyLock(ctx, func(ctx context.Context) error {
		rows, err := m.store.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		if err := fn(ctx, rows, m.opts.Now()); err != nil {
			return err
		}
		if n, ok := m.store.(changeNotifier); ok {
			return n.NotifySigningKeysChanged(ctx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return m.Reload(ctx)
}

// activeAfter is the activation time of a key that must sign from now on
// in a chain: now, or a millisecond after the chain's latest key already
// active when that is now too (activations within a chain never tie).
func activeAfter(chain []store.SigningKey, now time.Time) time.Time {
	for i := len(chain) - 1; i >= 0; i-- {
		if !chain[i].ActivatesAt.After(now) {
			return after(chain[i].ActivatesAt, now)
		}
	}
	return now
}

// dropWaiting deletes a chain's keys that have not signed yet, so that the
// key an operator puts in now is the one that signs until the next
// scheduled rotation rather than one made before the emergency; they signed
// nothing, so no token needs them. It returns the rest of the chain.
func (m *Manager) dropWaiting(ctx context.Context, chain []store.SigningKey, now time.Time) ([]store.SigningKey, error) {
	kept := chain[:0:0]
	for _, row := range chain {
		if !row.ActivatesAt.After(now) {
			kept = append(kept, row)
			continue
		}
		if err := m.store.DeleteSigningKey(ctx, row.KID); err != nil {
			return nil, err
		}
		m.opts.Logger.InfoContext(ctx, "waiting signing key dropped: an operator put a key in its place", "kid", row.KID, "alg", row.Alg)
	}
	return kept, nil
}

// RotateNow is the emergency rotation: a new key of every algorithm signs
// at once, on every instance, with no pre-publication. The keys it replaces
// stop signing but stay published, verify-only, until the tokens they
// signed have expired, so nothing already issued stops verifying. The price
// is that a verifier holding a cached JWKS sees an unknown kid on the next
// token until it fetches the set again. A key still waiting to sign is
// dropped. The answer is the configured algorithm's new key, as for Rotate.
func (m *Manager) RotateNow(ctx context.Context) (Info, error) {
	var kid string
	err := m.change(ctx, func(ctx context.Context, rows []store.SigningKey, now time.Time) error {
		for i, chain := range chainsOf(rows) {
			chain, err := m.dropWaiting(ctx, chain, now)
			if err != nil {
				return err
			}
			row, err := m.create(ctx, string(Algorithms[i]), activeAfter(chain, now))
			if err != nil {
				return err
			}
			if i == m.alg {
				kid = row.KID
			}
		}
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	m.opts.Logger.WarnContext(ctx, "emergency signing key rotation: new keys sign now, without pre-publication", "kid", kid)
	return m.info(kid)
}

// Revocation is what Revoke did: the key it removed and, when that key was
// signing, the key that took over its algorithm.
type Revocation struct {
	Revoked    Info  `json:"revoked"`
	ReplacedBy *Info `json:"replaced_by,omitempty"`
}

// Revoke removes a compromised key at once: it leaves the JWKS and every
// token it signed stops verifying (introspection answers inactive, userinfo
// 401, an id_token_hint it signed is refused) on every instance. Refresh
// tokens and opaque access tokens are not signed with it and keep working;
// a client refreshes to get an access token signed by another key. When the
// key was the signing key of its algorithm, a new key of that algorithm
// signs from now on, so no algorithm is ever left without a signer.
func (m *Manager) Revoke(ctx context.Context, kid string) (Revocation, error) {
	var out Revocation
	var replacement string
	err := m.change(ctx, func(ctx context.Context, rows []store.SigningKey, now time.Time) error {
		at := -1
		for i, row := range rows {
			if row.KID == kid {
				at = i
			}
		}
		if at < 0 {
			return ErrUnknownKey
		}
		revoked := rows[at]
		// The row goes, sealed private half and all: nothing is left to
		// sign or verify with.
		out.Revoked = Info{
			KID: revoked.KID, Alg: revoked.Alg, State: "revoked", Sealed: "deleted",
			CreatedAt: revoked.CreatedAt.UTC(), ActivatesAt: revoked.ActivatesAt.UTC(),
		}
		if err := m.store.DeleteSigningKey(ctx, kid); err != nil {
			return err
		}
		m.opts.Logger.WarnContext(ctx, "signing key revoked: it is unpublished and the tokens it signed no longer verify", "kid", kid, "alg", revoked.Alg)
		i := algIndex(jose.SignatureAlgorithm(revoked.Alg))
		if i < 0 || revoked.ActivatesAt.After(now) {
			return nil
		}
		chain := chainsOf(rows)[i]
		signing := false
		for j := len(chain) - 1; j >= 0; j-- {
			if !chain[j].ActivatesAt.After(now) {
				signing = chain[j].KID == kid
				break
			}
		}
		if !signing {
			return nil
		}
		rest := make([]store.SigningKey, 0, len(chain))
		for _, row := range chain {
			if row.KID != kid {
				rest = append(rest, row)
			}
		}
		row, err := m.create(ctx, revoked.Alg, activeAfter(rest, now))
		if err != nil {
			return err
		}
		replacement = row.KID
		m.opts.Logger.WarnContext(ctx, "a new signing key replaces the revoked one", "kid", row.KID, "alg", revoked.Alg, "revoked_kid", kid)
		return nil
	})
	if err != nil {
		return Revocation{}, err
	}
	if replacement != "" {
		info, err := m.info(replacement)
		if err != nil {
			return Revocation{}, err
		}
		out.ReplacedBy = &info
	}
	return out, nil
}

// info describes a key in memory by kid.
func (m *Manager) info(kid string) (Info, error) {
	for _, info := range m.List() {
		if info.KID == kid {
			return info, nil
		}
	}
	return Info{}, fmt.Errorf("signing key %s not found after reload", kid)
}

// ImportOptions say how an imported key joins its chain.
type ImportOptions struct {
	// Alg is the key's algorithm; empty infers it from the key.
	Alg string
	// KID names the key; empty means its RFC 7638 thumbprint.
	KID string
	// Now makes the key sign at once, as RotateNow's keys do; otherwise it
	// is published now and signs after the pre-publication period.
	Now bool
}

// Import brings in a private key an operator made elsewhere (an HSM export,
// say): a PEM block (PKCS #8, PKCS #1 or SEC 1) or a JWK. It is checked
// (ParsePrivateKey), sealed at rest like a generated key, and becomes the
// next signing key of its algorithm's chain, replacing a key still waiting
// there; the keys before it retire as in any rotation. Neither the key nor
// anything derived from its private half is logged or answered.
func (m *Manager) Import(ctx context.Context, material []byte, opts ImportOptions) (Info, error) {
	priv, alg, err := ParsePrivateKey(material, opts.Alg)
	if err != nil {
		return Info{}, err
	}
	if opts.KID != "" && !validKID(opts.KID) {
		return Info{}, fmt.Errorf("%w: a kid is 1 to 128 letters, digits, '-', '_' or '.'", ErrInvalidKey)
	}
	var kid string
	err = m.change(ctx, func(ctx context.Context, rows []store.SigningKey, now time.Time) error {
		thumb, err := thumbprint(jose.JSONWebKey{Key: priv.Public()})
		if err != nil {
			return err
		}
		want := opts.KID
		if want == "" {
			want = thumb
		}
		for _, row := range rows {
			if row.KID == want {
				return fmt.Errorf("%w: %s", ErrKeyExists, want)
			}
			// The same key under another kid would be two keys to retire
			// and revoke, one of which an operator could forget.
			var pub jose.JSONWebKey
			if json.Unmarshal([]byte(row.PublicKey), &pub) == nil {
				if t, err := thumbprint(pub); err == nil && t == thumb {
					return fmt.Errorf("%w: the same key is stored as %s", ErrKeyExists, row.KID)
				}
			}
		}
		chain, err := m.dropWaiting(ctx, chainsOf(rows)[algIndex(alg)], now)
		if err != nil {
			return err
		}
		activates := activeAfter(chain, now)
		if !opts.Now {
			activates = now.Add(m.opts.PrepublishPeriod)
			if n := len(chain); n > 0 {
				activates = after(chain[n-1].ActivatesAt, activates)
			}
		}
		row, err := m.add(ctx, string(alg), priv, want, activates)
		if err != nil {
			return err
		}
		kid = row.KID
		return nil
	})
	if err != nil {
		return Info{}, err
	}
	m.opts.Logger.InfoContext(ctx, "signing key imported", "kid", kid, "alg", alg, "now", opts.Now)
	return m.info(kid)
}

// validKID keeps an operator's kid to characters that need no escaping in
// a JOSE header, a URL path or a log line.
func validKID(kid string) bool {
	if len(kid) == 0 || len(kid) > 128 {
		return false
	}
	for _, c := range kid {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
