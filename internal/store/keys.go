package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// SigningKey is a JWT signing key as stored. PrivateKey is sealed by the
// keys package; the store never sees a plaintext private key. An empty
// PrivateKey marks a retired, verify-only key.
type SigningKey struct {
	KID         string    `gorm:"column:kid;primaryKey"`
	Alg         string    `gorm:"column:alg"`
	PublicKey   string    `gorm:"column:public_key"`
	PrivateKey  []byte    `gorm:"column:private_key"`
	CreatedAt   time.Time `gorm:"column:created_at"`
	ActivatesAt time.Time `gorm:"column:activates_at"`
}

// TableName tells GORM the table.
func (*SigningKey) TableName() string { return "signing_keys" }

// ListSigningKeys returns every key, oldest activation first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	var ks []SigningKey
	if err := s.db(ctx).Order("activates_at, kid").Find(&ks).Error; err != nil {
		return nil, fmt.Errorf("list signing keys: %w", translate(err))
	}
	return ks, nil
}

// CreateSigningKey stores a new key.
func (s *Store) CreateSigningKey(ctx context.Context, k *SigningKey) error {
	k.CreatedAt, k.ActivatesAt = k.CreatedAt.UTC(), k.ActivatesAt.UTC()
	if err := s.db(ctx).Create(k).Error; err != nil {
		return fmt.Errorf("create signing key: %w", translate(err))
	}
	return nil
}

// EraseSigningKey deletes a key's sealed private half: a key that stopped
// signing only verifies, and an empty private_key says so.
func (s *Store) EraseSigningKey(ctx context.Context, kid string) error {
	if err := s.db(ctx).Model(&SigningKey{}).Where("kid = ?", kid).Update("private_key", []byte{}).Error; err != nil {
		return fmt.Errorf("erase signing key: %w", translate(err))
	}
	return nil
}

// DeleteSigningKey removes a key that no longer verifies any live token.
func (s *Store) DeleteSigningKey(ctx context.Context, kid string) error {
	if err := s.db(ctx).Where("kid = ?", kid).Delete(&SigningKey{}).Error; err != nil {
		return fmt.Errorf("delete signing key: %w", translate(err))
	}
	return nil
}

// signingKeyLock is the PostgreSQL advisory lock key that serialises key
// creation across instances ("latchkey" as an integer).
const signingKeyLock = 0x6c617463686b6579

// WithSigningKeyLock runs fn in a transaction that holds the key-management
// lock, so that of several instances deciding at once whether a key must be
// made, exactly one makes it. On PostgreSQL that is a transaction-scoped
// advisory lock; SQLite's BEGIN IMMEDIATE already admits one writer.
func (s *Store) WithSigningKeyLock(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if s.dialect == DialectPostgres {
			if err := s.db(ctx).Exec("SELECT pg_advisory_xact_lock(?)", int64(signingKeyLock)).Error; err != nil {
				return fmt.Errorf("take signing key lock: %w", translate(err))
			}
		}
		return fn(ctx)
	})
}

// signingKeysPayload is the notice, on the invalidation channel, that the
// signing keys changed.
const signingKeysPayload = "signing-keys"

// NotifySigningKeysChanged tells every other instance, on PostgreSQL, to
// read the signing keys again now rather than at its next refresh: a revoked
// key must stop verifying everywhere at once. Inside a transaction the
// notice goes out on commit, so nobody reads the keys before the change is
// visible. On SQLite it does nothing: instances share no channel there, and
// each reads the keys again every refresh interval.
func (s *Store) NotifySigningKeysChanged(ctx context.Context) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	if err := s.db(ctx).Exec("SELECT pg_notify(?, ?)", invalidationChannel, signingKeysPayload).Error; err != nil {
		return fmt.Errorf("announce signing key change: %w", translate(err))
	}
	return nil
}

// OnSigningKeysChanged registers fn, called when another instance announces
// a signing key change (NotifySigningKeysChanged) and whenever the
// invalidation channel starts listening again, since a notice sent while it
// was down is lost. fn runs on the listener's goroutine and must not block.
func (s *Store) OnSigningKeysChanged(fn func()) {
	s.keyWatchers.add(fn)
}

// keyWatchers are the callbacks of OnSigningKeysChanged.
type keyWatchers struct {
	mu  sync.Mutex
	fns []func()
}

func (w *keyWatchers) add(fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fns = append(w.fns, fn)
}

func (w *keyWatchers) notify() {
	w.mu.Lock()
	fns := w.fns
	w.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}
