package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/actor"
	"github.com/latchkey/latchkey/internal/requestid"
	"github.com/latchkey/latchkey/internal/store"
)

// AuditStore keeps the audit log of admin changes (audit.go).
type AuditStore interface {
	// AppendAudit writes an entry in the context's transaction, if any.
	AppendAudit(ctx context.Context, e *store.AuditEntry) error
	// ListAudit returns entries newest first.
	ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, error)
}

// Audit actions, "target_type.verb".
const (
	ActionClientCreate       = "client.create"
	ActionClientUpdate       = "client.update"
	ActionClientDelete       = "client.delete"
	ActionClientRotateSecret = "client.rotate_secret"
	ActionUserCreate         = "user.create"
	ActionUserUpdate         = "user.update"
	ActionUserDelete         = "user.delete"
	ActionUserSetPassword    = "user.set_password"
	ActionUserRevokeTokens   = "user.revoke_tokens"
	ActionUserResetFactors   = "user.reset_factors"
	ActionKeyRotate          = "key.rotate"
	ActionKeyRevoke          = "key.revoke"
	ActionKeyImport          = "key.import"
	ActionScopePut           = "scope.put"
	ActionScopeDelete        = "scope.delete"
	ActionAdminTokenCreate   = "admin_token.create"
	ActionAdminTokenRevoke   = "admin_token.revoke"
	ActionAdminTokenRotate   = "admin_token.rotate"
)

// Target types of audit entries.
const (
	TargetClient     = "client"
	TargetUser       = "user"
	TargetKey        = "key"
	TargetScope      = "scope"
	TargetAdminToken = "admin_token"
)

// unknownActor is recorded when a change comes with no actor in its
// context (serve --dev's demo client and user).
const unknownActor = "system"

// record appends an audit entry for a change. before and after are the
// target's public views (ClientMetadata without its secret, UserInfo,
// ScopeInfo, keys.Info, AdminTokenInfo): nil for nothing. Callers run it
// in the change's transaction, so the entry exists if and only if the
// change does.
func (s *Service) record(ctx context.Context, action, targetType, targetID string, before, after any) error {
	e := &store.AuditEntry{
		Actor: actor.FromContext(ctx), Action: action, TargetType: targetType, TargetID: targetID,
		RequestID: requestid.FromContext(ctx),
	}
	if e.Actor == "" {
		e.Actor = unknownActor
	}
	var err error
	if e.Before, err = auditJSON(before); err != nil {
		return err
	}
	if e.After, err = auditJSON(after); err != nil {
		return err
	}
	return s.store.AppendAudit(ctx, e)
}

func auditJSON(v any) (*string, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("audit entry: %w", err)
	}
	if string(b) == "null" { // a nil pointer in an interface: nothing
		return nil, nil
	}
	out := string(b)
	return &out, nil
}

// RecordKeyChange records a signing key rotation, revocation or import
// (ActionKey*). It runs right after the change, not in its transaction:
// the key manager commits under its own lock and then reloads its key set,
// and the keys package knows nothing of the admin audit log. A failure
// here leaves the change made and is returned for the caller to report.
func (s *Service) RecordKeyChange(ctx context.Context, action, kid string, before, after any) error {
	return s.record(ctx, action, TargetKey, kid, before, after)
}

// AuditInfo is an audit entry as the admin API and the CLI show it.
type AuditInfo struct {
	ID         string          `json:"id"`
	At         time.Time       `json:"at"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetID   string          `json:"target_id"`
	RequestID  string          `json:"request_id,omitempty"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
}

// AuditPage is one page of GET /admin/audit. NextCursor, when set, is the
// cursor of the next (older) page.
type AuditPage struct {
	Entries    []AuditInfo `json:"entries"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// AuditQuery is what GET /admin/audit and `latchkey audit list` filter by.
type AuditQuery struct {
	Since time.Time
	Actor string
	// Target is "TYPE" or "TYPE:ID" (client:abc, user:…, admin_token:ci).
	Target string
	Limit  int
	Cursor string
}

// Audit page sizes.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// ListAudit returns the audit log newest first, one page at a time.
func (s *Service) ListAudit(ctx context.Context, q AuditQuery) (*AuditPage, error) {
	f := store.AuditFilter{Since: q.Since, Actor: q.Actor, Limit: q.Limit}
	switch {
	case f.Limit == 0:
		f.Limit = DefaultAuditLimit
	case f.Limit < 0 || f.Limit > MaxAuditLimit:
		return nil, &InputError{fmt.Sprintf("limit must be 1 to %d", MaxAuditLimit)}
	}
	if q.Target != "" {
		f.TargetType, f.TargetID, _ = strings.Cut(q.Target, ":")
		if f.TargetType == "" {
			return nil, &InputError{"target must be TYPE or TYPE:ID, e.g. client or client:my-app"}
		}
	}
	if q.Cursor != "" {
		n, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || n <= 0 {
			return nil, &InputError{"cursor is not one this server gave out; use next_cursor of the previous page"}
		}
		f.Before = n
	}
	es, err := s.store.ListAudit(ctx, f)
	if err != nil {
		return nil, err
	}
	page := &AuditPage{Entries: make([]AuditInfo, len(es))}
	for i, e := range es {
		page.Entries[i] = AuditInfo{
			ID: strconv.FormatInt(e.ID, 10), At: e.At, Actor: e.Actor, Action: e.Action,
			TargetType: e.TargetType, TargetID: e.TargetID, RequestID: e.RequestID,
			Before: rawJSON(e.Before), After: rawJSON(e.After),
		}
	}
	if len(es) == f.Limit {
		page.NextCursor = strconv.FormatInt(es[len(es)-1].ID, 10)
	}
	return page, nil
}

func rawJSON(s *string) json.RawMessage {
	if s == nil {
		return nil
	}
	return json.RawMessage(*s)
}

// ParseSince reads a since filter: an RFC 3339 time, or (for people at a
// shell) a duration back from now such as 24h.
func ParseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, &InputError{fmt.Sprintf("since %q must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (24h)", v)}
}

// listAudit is GET /admin/audit?since=&actor=&target=&limit=&cursor=.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := AuditQuery{Actor: v.Get("actor"), Target: v.Get("target"), Cursor: v.Get("cursor")}
	var err error
	if q.Since, err = ParseSince(v.Get("since"), a.svc.policy.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	if l := v.Get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit == 0 {
			a.fail(w, r, &InputError{fmt.Sprintf("limit must be 1 to %d", MaxAuditLimit)})
			return
		}
	}
	page, err := a.svc.ListAudit(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}
