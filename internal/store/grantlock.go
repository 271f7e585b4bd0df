package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/ory/fosite"
)

// Rotation and revocation of one grant are serialized (issue 12 item 1).
//
// Under READ COMMITTED, a revoking UPDATE ... WHERE request_id = ? AND active
// that waits on the row a rotation locked re-checks that one row once the
// rotation commits, finds it inactive, and never sees the successor the
// rotation inserted: the refresh in flight would survive the revocation. So
// every rotation and every revocation first takes a transaction-scoped
// advisory lock on the grant (migration 00009, latchkey_lock_grants); the
// statements after it run with snapshots that hold whatever the other side
// committed. Several grants are locked in one statement, in the order of their
// lock keys, so that two subject-wide revocations cannot deadlock.
//
// SQLite needs no lock: BEGIN IMMEDIATE admits one writer at a time. The
// locks are taken by lockGrants and lockGrantsOfSubject (revoke.go).

// ErrGrantRevoked means a grace repeat found its successor no longer live:
// the grant was revoked (or the chain moved on) after the repeat was checked.
var ErrGrantRevoked = errors.New("grant revoked")

// notRevoked is the condition a refresh token row (alias t) must meet to be
// used: neither its grant nor its subject is on a deny-list. A subject
// revocation covers the grants that began at or before it (the argument is
// the grant's start); a user who signs in again afterwards gets a new grant.
// The refresh path ignores revoked_grants.expires_at, which bounds how long
// introspection needs the row; the janitor keeps the row as long as the grant
// could live.
const notRevoked = `NOT EXISTS (SELECT 1 FROM revoked_grants g WHERE g.request_id = t.request_id)
  AND NOT EXISTS (SELECT 1 FROM revoked_subjects s WHERE s.subject = t.subject AND s.revoked_at >= ?)`

// Rotation is one refresh token exchanged for its successor.
type Rotation struct {
	// OldSignature is the presented token's signature; Sealed its
	// successor sealed for grace repeats (nil for strict rotation).
	OldSignature string
	Sealed       []byte
	// NewSignature and Request are the successor; AccessSignature is the
	// access token issued with it.
	NewSignature    string
	AccessSignature string
	Request         fosite.Requester
	// GrantedAt is when the grant began, for revoked_subjects.
	GrantedAt time.Time
	// StoreAccessToken also stores the opaque access token, in the same
	// transaction: a revocation that waited for the grant's lock then
	// deletes it with the rest.
	StoreAccessToken bool
}

// RotateRefreshTokenOnce retires the old refresh token and stores its
// successor atomically, under the grant's lock, and only while neither the
// grant nor its subject is revoked. Of concurrent callers exactly one
// succeeds; the others, and any caller whose grant was revoked, get
// ErrSerializationFailure (the old row then says which: rotated or not).
//
// On PostgreSQL it is one statement, latchkey_rotate_refresh (migration
// 00009), that takes the lock and then rotates: one round trip, the same as
// the single data-modifying CTE it replaced, on the path every signed-in
// client takes every few minutes. With an opaque access token to store it
// is a transaction of that call and the insert.
func (s *Store) RotateRefreshTokenOnce(ctx context.Context, rot Rotation) error {
	if s.dialect != DialectPostgres {
		return s.InTx(ctx, func(ctx context.Context) error {
			if err := s.rotateGuarded(ctx, rot); err != nil {
				return err
			}
			if rot.StoreAccessToken {
				if err := s.CreateAccessTokenSession(ctx, rot.AccessSignature, rot.Request); err != nil {
					return err
				}
			}
			return s.CreateRefreshTokenSession(ctx, rot.NewSignature, rot.AccessSignature, rot.Request)
		})
	}
	if !rot.StoreAccessToken {
		return s.rotatePostgres(ctx, rot)
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.rotatePostgres(ctx, rot); err != nil {
			return err
		}
		return s.CreateAccessTokenSession(ctx, rot.AccessSignature, rot.Request)
	})
}

// rotateGuarded is the conditional update of the old token with the
// deny-lists in its condition, for SQLite, where the single writer makes it
// see every committed revocation.
func (s *Store) rotateGuarded(ctx context.Context, rot Rotation) error {
	set := map[string]any{"active": false, "rotated_at": s.nowUTC()}
	if rot.Sealed != nil {
		set["successor"] = rot.Sealed
	}
	res := s.db(ctx).Table(tableRefresh+" AS t").
		Where("signature = ? AND request_id = ? AND active = ?", secrets.SignatureKey(rot.OldSignature), rot.Request.GetID(), true).
		Where(notRevoked, rot.GrantedAt.UTC()).
		Updates(set)
	if res.Error != nil {
		return fmt.Errorf("rotate refresh token: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("rotate refresh token: %w", fosite.ErrSerializationFailure)
	}
	return nil
}

func (s *Store) rotatePostgres(ctx context.Context, rot Rotation) error {
	row, err := s.newRow(rot.NewSignature, rot.Request, fosite.RefreshToken)
	if err != nil {
		return err
	}
	lists := make([]string, 0, 4)
	for _, l := range [][]string{row.RequestedScopes, row.GrantedScopes, row.RequestedAudience, row.GrantedAudience} {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		lists = append(lists, string(b))
	}
	access := ""
	if rot.AccessSignature != "" {
		access = secrets.SignatureKey(rot.AccessSignature)
	}
	var rotated bool
	err = s.db(ctx).Raw("SELECT latchkey_rotate_refresh(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		secrets.SignatureKey(rot.OldSignature), s.nowUTC(), rot.Sealed, rot.GrantedAt.UTC(),
		row.Signature, row.RequestID, row.RequestedAt, row.ClientID, row.Subject, lists[0], lists[1], lists[2], lists[3],
		row.FormData, row.SessionData, row.ExpiresAt, row.LoginSessionID, access).Scan(&rotated).Error
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", translate(err))
	}
	if !rotated {
		return fmt.Errorf("rotate refresh token: %w", fosite.ErrSerializationFailure)
	}
	return nil
}

// RefreshTokenLive reports whether a refresh token (by signature) is active
// and neither its grant nor its subject revoked, for checking a grace
// repeat's successor.
func (s *Store) RefreshTokenLive(ctx context.Context, signature string, grantedAt time.Time) (bool, error) {
	var n int64
	err := s.db(ctx).Table(tableRefresh+" AS t").Where("signature = ? AND active = ?", secrets.SignatureKey(signature), true).
		Where(notRevoked, grantedAt.UTC()).Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("check refresh token: %w", translate(err))
	}
	return n == 1, nil
}

// CreateGraceAccessToken stores the opaque access token of a grace repeat
// under the grant's lock, and only while the successor the repeat hands out
// is still live: an insert after a concurrent revocation had deleted the
// grant's access tokens would outlive it. ErrGrantRevoked when it is not.
func (s *Store) CreateGraceAccessToken(ctx context.Context, successorSignature, accessSignature string, r fosite.Requester, grantedAt time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockGrants(ctx, r.GetID()); err != nil {
			return err
		}
		live, err := s.RefreshTokenLive(ctx, successorSignature, grantedAt)
		if err != nil {
			return err
		}
		if !live {
			return fmt.Errorf("grace repeat of request %s: %w", r.GetID(), ErrGrantRevoked)
		}
		return s.CreateAccessTokenSession(ctx, accessSignature, r)
	})
}

// CreateExchangedAccessToken stores the opaque access token a token
// exchange issued into the subject token's grant (r's request ID), under
// the grant's lock, and only while that grant is live: the subject token's
// own row still stored (subjectSignature; "" for a JWT subject token, which
// has none) and the grant not on the deny-list. A revocation that took the
// lock first has deleted the subject's row or listed the grant, and the
// exchange fails with ErrGrantRevoked; one that comes after deletes this
// row with the rest.
func (s *Store) CreateExchangedAccessToken(ctx context.Context, subjectSignature, accessSignature string, r fosite.Requester) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockGrants(ctx, r.GetID()); err != nil {
			return err
		}
		// The grant's start, for revoked_subjects as the refresh path
		// reads it; a session without one is checked from now.
		grantedAt := s.nowUTC()
		if gs, ok := r.GetSession().(*grantsession.Session); ok && !gs.GrantedAt.IsZero() {
			grantedAt = gs.GrantedAt.UTC()
		}
		var live bool
		err := s.db(ctx).Raw(
			"SELECT (? = '' OR EXISTS (SELECT 1 FROM "+tableAccess+" WHERE signature = ? AND request_id = ?)) "+
				"AND NOT EXISTS (SELECT 1 FROM revoked_grants WHERE request_id = ? AND expires_at > ?) "+
				"AND NOT EXISTS (SELECT 1 FROM revoked_subjects WHERE subject = ? AND revoked_at >= ?)",
			subjectSignature, secrets.SignatureKey(subjectSignature), r.GetID(), r.GetID(), s.nowUTC(),
			r.GetSession().GetSubject(), grantedAt,
		).Scan(&live).Error
		if err != nil {
			return fmt.Errorf("check subject token of exchange: %w", translate(err))
		}
		if !live {
			return fmt.Errorf("token exchange into request %s: %w", r.GetID(), ErrGrantRevoked)
		}
		return s.CreateAccessTokenSession(ctx, accessSignature, r)
	})
}
