package store

import (
	"context"
	"fmt"
	"time"
)

// Pushed authorization requests (RFC 9126): the checked authorization
// requests clients POST to /oauth2/par, waiting for the browser to bring
// their request_uri to the authorization endpoint of any instance.

// PushedRequest is one pushed authorization request.
type PushedRequest struct {
	// ID is secrets.SignatureKey of the request_uri: the raw value, a
	// bearer of the request, is never stored.
	ID       string `gorm:"column:id;primaryKey"`
	ClientID string `gorm:"column:client_id"`
	// Form is the authorization request, URL-encoded, without the client's
	// credentials.
	Form      string    `gorm:"column:form"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
	CreatedAt time.Time `gorm:"column:created_at"`
}

// TableName tells GORM the table.
func (*PushedRequest) TableName() string { return "pushed_requests" }

// CreatePushedRequest stores a pushed request. A missing client is
// ErrMissingReference.
func (s *Store) CreatePushedRequest(ctx context.Context, pr *PushedRequest) error {
	row := *pr
	row.ExpiresAt = row.ExpiresAt.UTC()
	if row.CreatedAt.IsZero() {
		row.CreatedAt = s.nowUTC()
	}
	if err := s.db(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("store pushed request: %w", translate(err))
	}
	return nil
}

// ConsumePushedRequest redeems the pushed request id of clientID: it
// deletes the row and returns it, in one conditional statement, so that of
// two redemptions racing on any instances exactly one gets it. A request
// that is unknown, expired, already redeemed or pushed by another client
// is ErrNotFound, and another client's request stays for its owner.
func (s *Store) ConsumePushedRequest(ctx context.Context, id, clientID string) (*PushedRequest, error) {
	var got []PushedRequest
	err := s.db(ctx).Raw(`DELETE FROM pushed_requests WHERE id = ? AND client_id = ? AND expires_at > ?
RETURNING id, client_id, form, expires_at, created_at`, id, clientID, s.nowUTC()).Scan(&got).Error
	if err != nil {
		return nil, fmt.Errorf("redeem pushed request: %w", translate(err))
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("redeem pushed request: %w", ErrNotFound)
	}
	return &got[0], nil
}
