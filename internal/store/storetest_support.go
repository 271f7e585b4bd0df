package store

// Test support. Nothing in the server calls the methods of this file: they
// read what the tests check (rows as stored, counters, audit records) and
// are kept out of the files that hold the store's production API. Each
// reads through db(ctx), so a test may call it inside a transaction.

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// inspectable lists the tables and columns RawColumn may read.
var inspectable = map[string][]string{
	tableAccess: {"signature", "request_id"}, tableRefresh: {"signature", "request_id"},
	tableCode: {"signature", "request_id"}, tablePKCE: {"signature", "request_id"},
	"signing_keys":         {"kid", "public_key", "private_key"},
	"pushed_requests":      {"id", "form"},
	"dpop_proofs":          {"jti"},
	"device_codes":         {"signature", "user_code"},
	"login_session_grants": {"request_id"},
	"user_factors":         {"id", "secret"},
	"recovery_codes":       {"code_hash"},
	"email_tokens":         {"id"},
}

// RawColumn reads one column of a token or key table as stored. It exists
// for tests that check what lands on disk (a digest, not a token; a sealed
// key, not a private key); the names are checked against a fixed list, never interpolated
// from input.
func (s *Store) RawColumn(ctx context.Context, table, column string) ([]string, error) {
	if !slices.Contains(inspectable[table], column) {
		return nil, fmt.Errorf("column %s.%s is not inspectable", table, column)
	}
	var out []string
	if err := s.db(ctx).Table(table).Order(column).Pluck(column, &out).Error; err != nil {
		return nil, translate(err)
	}
	return out, nil
}

// ActiveRefreshTokens counts the live refresh tokens of a grant: at most
// one, since rotation retires the old token in the transaction that stores
// the new one.
func (s *Store) ActiveRefreshTokens(ctx context.Context, requestID string) (int64, error) {
	var n int64
	if err := s.db(ctx).Table(tableRefresh).Where("request_id = ? AND active = ?", requestID, true).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count refresh tokens: %w", translate(err))
	}
	return n, nil
}

// ActiveRefreshTokensOf counts the live refresh tokens a subject holds.
func (s *Store) ActiveRefreshTokensOf(ctx context.Context, subject string) (int64, error) {
	var n int64
	if err := s.db(ctx).Table(tableRefresh).Where("subject = ? AND active = ?", subject, true).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count refresh tokens: %w", translate(err))
	}
	return n, nil
}

// SecurityEvents lists the audit records of a kind, newest first.
func (s *Store) SecurityEvents(ctx context.Context, kind string) ([]SecurityEvent, error) {
	var out []SecurityEvent
	if err := s.db(ctx).Where("kind = ?", kind).Order("created_at DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list security events: %w", translate(err))
	}
	return out, nil
}

// ConsentedScopes returns the scopes a user granted a client (none if never).
func (s *Store) ConsentedScopes(ctx context.Context, userID, clientID string) ([]string, error) {
	var c Consent
	err := s.db(ctx).Where("user_id = ? AND client_id = ?", userID, clientID).Limit(1).Find(&c).Error
	if err != nil {
		return nil, fmt.Errorf("find consent: %w", translate(err))
	}
	return c.Scopes, nil
}

// GrantsOfLoginSession lists the grants (request IDs) issued under a login
// session, including those it took over from the sessions it replaced.
func (s *Store) GrantsOfLoginSession(ctx context.Context, sessionID string) ([]string, error) {
	var ids []string
	if err := s.db(ctx).Model(&loginSessionGrant{}).Where("login_session_id = ?", sessionID).
		Order("request_id").Pluck("request_id", &ids).Error; err != nil {
		return nil, fmt.Errorf("find grants of login session: %w", translate(err))
	}
	return ids, nil
}

// LoginFailures returns the records of the given keys that are still within
// their window or locked.
func (s *Store) LoginFailures(ctx context.Context, window time.Duration, keys ...string) ([]LoginFailure, error) {
	now := s.nowUTC()
	var out []LoginFailure
	err := s.db(ctx).Where("key IN ? AND (window_start > ? OR locked_until > ?)", keys, now.Add(-window), now).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("read login failures: %w", translate(err))
	}
	return out, nil
}

// AgeAuditForTest moves every audit entry back by d, so a test can make
// entries the janitor should purge without waiting.
func (s *Store) AgeAuditForTest(ctx context.Context, d time.Duration) error {
	var es []AuditEntry
	if err := s.db(ctx).Find(&es).Error; err != nil {
		return translate(err)
	}
	for _, e := range es {
		if err := s.db(ctx).Model(&AuditEntry{}).Where("id = ?", e.ID).Update("at", e.At.Add(-d)).Error; err != nil {
			return translate(err)
		}
	}
	return nil
}
