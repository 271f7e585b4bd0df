package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/latchkey/latchkey/internal/actor"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// AdminTokenStore keeps named admin tokens (tokens.go).
type AdminTokenStore interface {
	CreateAdminToken(ctx context.Context, t *store.AdminToken) error
	// FindAdminTokenByHash is the guard's one indexed query per request.
	FindAdminTokenByHash(ctx context.Context, tokenHash string) (*store.AdminToken, error)
	FindAdminToken(ctx context.Context, name string) (*store.AdminToken, error)
	ListAdminTokens(ctx context.Context) ([]*store.AdminToken, error)
	RotateAdminToken(ctx context.Context, name, tokenHash string, expiresAt *time.Time) error
	DeleteAdminToken(ctx context.Context, name string) error
}

// adminTokenPrefix marks Latchkey admin tokens, so that a secret scanner
// (or a person) can tell one in a log or a repository.
const adminTokenPrefix = "lkadm_"

// adminTokenName: what may name a token, and so appear as an actor. No
// ":" keeps the "cli:" actors apart.
var adminTokenName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ErrAdminTokenExists is a create of a name already in use; the API answers 409.
var ErrAdminTokenExists = errors.New("an admin token of that name exists")

// AdminTokenInfo is a named admin token as the API and CLI show it. Token
// is set only in the answers of create and rotate: it is stored as a hash
// and never shown again.
type AdminTokenInfo struct {
	Name      string     `json:"name"`
	Token     string     `json:"token,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RotatedAt *time.Time `json:"rotated_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func adminTokenInfo(t *store.AdminToken) *AdminTokenInfo {
	return &AdminTokenInfo{Name: t.Name, CreatedAt: t.CreatedAt, RotatedAt: t.RotatedAt, ExpiresAt: t.ExpiresAt}
}

// hashAdminToken is how a token is stored and looked up: hex SHA-256. A
// server-generated 256-bit token needs no slow hash; a plain one lets the
// guard find it with one indexed equality.
func hashAdminToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func newAdminToken() (token, hash string, err error) {
	random, err := secrets.RandomToken(32)
	if err != nil {
		return "", "", err
	}
	token = adminTokenPrefix + random
	return token, hashAdminToken(token), nil
}

func checkAdminTokenName(name string) error {
	switch {
	case !adminTokenName.MatchString(name):
		return &InputError{"an admin token's name must be 1-64 characters of A-Z a-z 0-9 . _ -"}
	case name == actor.Bootstrap:
		return &InputError{`"bootstrap" is LATCHKEY_ADMIN_TOKEN's name; choose another`}
	}
	return nil
}

func (s *Service) expiry(expiresIn time.Duration) (*time.Time, error) {
	switch {
	case expiresIn < 0:
		return nil, &InputError{"expires_in must be positive"}
	case expiresIn == 0:
		return nil, nil
	}
	t := s.policy.Now().UTC().Add(expiresIn)
	return &t, nil
}

// CreateAdminToken makes a named admin token, valid for expiresIn (zero:
// until revoked). The answer carries the token, shown this once.
func (s *Service) CreateAdminToken(ctx context.Context, name string, expiresIn time.Duration) (*AdminTokenInfo, error) {
	if err := checkAdminTokenName(name); err != nil {
		return nil, err
	}
	exp, err := s.expiry(expiresIn)
	if err != nil {
		return nil, err
	}
	token, hash, err := newAdminToken()
	if err != nil {
		return nil, err
	}
	t := &store.AdminToken{Name: name, TokenHash: hash, ExpiresAt: exp}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.CreateAdminToken(ctx, t); err != nil {
			return err
		}
		return s.record(ctx, ActionAdminTokenCreate, TargetAdminToken, name, nil, adminTokenInfo(t))
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, fmt.Errorf("admin token %q: %w", name, ErrAdminTokenExists)
	}
	if err != nil {
		return nil, err
	}
	out := adminTokenInfo(t)
	out.Token = token
	return out, nil
}

// ListAdminTokens returns every named token, never a token or its hash.
func (s *Service) ListAdminTokens(ctx context.Context) ([]*AdminTokenInfo, error) {
	ts, err := s.store.ListAdminTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*AdminTokenInfo, len(ts))
	for i, t := range ts {
		out[i] = adminTokenInfo(t)
	}
	return out, nil
}

// RevokeAdminToken deletes a named token: the next request with it, on any
// instance, is 401. store.ErrNotFound for an unknown name.
func (s *Service) RevokeAdminToken(ctx context.Context, name string) error {
	return s.store.InTx(ctx, func(ctx context.Context) error {
		t, err := s.store.FindAdminToken(ctx, name)
		if err != nil {
			return err
		}
		if err := s.store.DeleteAdminToken(ctx, name); err != nil {
			return err
		}
		return s.record(ctx, ActionAdminTokenRevoke, TargetAdminToken, name, adminTokenInfo(t), nil)
	})
}

// RotateAdminToken gives a named token a new value, shown this once; the
// old value stops working at once. The new one lives expiresIn, or, when
// zero, as long as the old one was given (no expiry stays none).
func (s *Service) RotateAdminToken(ctx context.Context, name string, expiresIn time.Duration) (*AdminTokenInfo, error) {
	token, hash, err := newAdminToken()
	if err != nil {
		return nil, err
	}
	var out *AdminTokenInfo
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		t, err := s.store.FindAdminToken(ctx, name)
		if err != nil {
			return err
		}
		life := expiresIn
		if life == 0 && t.ExpiresAt != nil {
			issued := t.CreatedAt
			if t.RotatedAt != nil {
				issued = *t.RotatedAt
			}
			life = max(t.ExpiresAt.Sub(issued), time.Second)
		}
		exp, err := s.expiry(life)
		if err != nil {
			return err
		}
		if err := s.store.RotateAdminToken(ctx, name, hash, exp); err != nil {
			return err
		}
		now, err := s.store.FindAdminToken(ctx, name)
		if err != nil {
			return err
		}
		out = adminTokenInfo(now)
		return s.record(ctx, ActionAdminTokenRotate, TargetAdminToken, name, adminTokenInfo(t), out)
	})
	if err != nil {
		return nil, err
	}
	out.Token = token
	return out, nil
}

// AuthenticateAdmin names the actor of a presented admin token: "bootstrap"
// for LATCHKEY_ADMIN_TOKEN (bootstrapHash is its SHA-256), else a named,
// unexpired token's name. ok is false for anything else. The lookup is by
// the token's SHA-256, so how long it takes says nothing about how close
// a wrong token is; both comparisons are constant-time.
func (s *Service) AuthenticateAdmin(ctx context.Context, token string, bootstrapHash [32]byte) (name string, ok bool, err error) {
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], bootstrapHash[:]) == 1 {
		return actor.Bootstrap, true, nil
	}
	hash := hex.EncodeToString(sum[:])
	t, err := s.store.FindAdminTokenByHash(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", false, nil
	case err != nil:
		return "", false, err
	case subtle.ConstantTimeCompare([]byte(t.TokenHash), []byte(hash)) != 1:
		return "", false, nil
	case t.ExpiresAt != nil && !s.policy.Now().Before(*t.ExpiresAt):
		return "", false, nil
	}
	return t.Name, true, nil
}

type adminTokenRequest struct {
	Name string `json:"name"`
	// ExpiresIn is the lifetime in seconds; 0 or absent: until revoked.
	ExpiresIn int64 `json:"expires_in"`
}

// maxAdminTokenLife bounds expires_in so that it converts to a Duration.
const maxAdminTokenLife = 100 * 365 * 24 * time.Hour

func expiresIn(seconds int64) (time.Duration, error) {
	if seconds < 0 || seconds > int64(maxAdminTokenLife/time.Second) {
		return 0, &InputError{"expires_in must be a number of seconds from 0 (no expiry) to 100 years"}
	}
	return time.Duration(seconds) * time.Second, nil
}

func (a *API) createAdminToken(w http.ResponseWriter, r *http.Request) {
	var req adminTokenRequest
	if !decodeAs(w, r, &req, "invalid_request") {
		return
	}
	life, err := expiresIn(req.ExpiresIn)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out, err := a.svc.CreateAdminToken(r.Context(), req.Name, life)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "admin token created", "admin_token", out.Name)
	writeJSON(w, http.StatusCreated, out)
}

func (a *API) listAdminTokens(w http.ResponseWriter, r *http.Request) {
	out, err := a.svc.ListAdminTokens(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) revokeAdminToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.svc.RevokeAdminToken(r.Context(), name); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "admin token revoked", "admin_token", name)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) rotateAdminToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ExpiresIn int64 `json:"expires_in"`
	}
	if r.ContentLength != 0 && !decodeAs(w, r, &req, "invalid_request") {
		return
	}
	life, err := expiresIn(req.ExpiresIn)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	name := r.PathValue("name")
	out, err := a.svc.RotateAdminToken(r.Context(), name, life)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "admin token rotated", "admin_token", name)
	writeJSON(w, http.StatusOK, out)
}
