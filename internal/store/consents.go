package store

import (
	"context"
	"fmt"
)

// FindConsent returns what a user granted a client. ErrNotFound if they
// never consented, which is not the same as consenting to no scope.
func (s *Store) FindConsent(ctx context.Context, userID, clientID string) (*Consent, error) {
	var c Consent
	if err := s.db(ctx).Where("user_id = ? AND client_id = ?", userID, clientID).Take(&c).Error; err != nil {
		return nil, fmt.Errorf("find consent: %w", translate(err))
	}
	return &c, nil
}
