package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
)

// Compile-time proof that the store satisfies every storage interface the
// provider is composed with; fosite's compose package would only panic at
// start-up. The password grant's Authenticate is not here: checking a
// password is policy (login.Authenticator, wrapped by oauth's
// throttledPasswords), not storage.
var (
	_ fosite.Storage                = (*Store)(nil)
	_ fosite.ClientManager          = (*Store)(nil)
	_ oauth2.CoreStorage            = (*Store)(nil)
	_ oauth2.TokenRevocationStorage = (*Store)(nil)
	_ pkce.PKCERequestStorage       = (*Store)(nil)
)

// Token tables. They share one row shape (requestRow); refresh tokens add
// two columns.
const (
	tableAccess  = "access_tokens"
	tableRefresh = "refresh_tokens"
	tableCode    = "authorization_codes"
	tablePKCE    = "pkce_requests"
)

// requestRow is a fosite request as stored. Signature is the SHA-256 of
// fosite's token signature (secrets.SignatureKey), never the token.
type requestRow struct {
	Signature         string     `gorm:"column:signature;primaryKey"`
	RequestID         string     `gorm:"column:request_id"`
	RequestedAt       time.Time  `gorm:"column:requested_at"`
	ClientID          string     `gorm:"column:client_id"`
	Subject           string     `gorm:"column:subject"`
	RequestedScopes   []string   `gorm:"column:requested_scopes;serializer:json"`
	GrantedScopes     []string   `gorm:"column:granted_scopes;serializer:json"`
	RequestedAudience []string   `gorm:"column:requested_audience;serializer:json"`
	GrantedAudience   []string   `gorm:"column:granted_audience;serializer:json"`
	FormData          string     `gorm:"column:form_data"`
	SessionData       string     `gorm:"column:session_data"`
	Active            bool       `gorm:"column:active"`
	ExpiresAt         *time.Time `gorm:"column:expires_at"`
	LoginSessionID    string     `gorm:"column:login_session_id"`
}

type refreshRow struct {
	Request              requestRow `gorm:"embedded"`
	AccessTokenSignature string     `gorm:"column:access_token_signature"`
	RotatedAt            *time.Time `gorm:"column:rotated_at"`
}

// sensitiveFormKeys are never written to the database: credentials and the
// tokens themselves. fosite keeps the form so a refresh can see the original
// request; it has no need for these.
var sensitiveFormKeys = []string{
	"client_secret", "password", "code", "code_verifier", "refresh_token",
	"client_assertion", "token", "assertion",
}

func (s *Store) newRow(signature string, r fosite.Requester, kind fosite.TokenType) (requestRow, error) {
	sess := r.GetSession()
	if sess == nil {
		return requestRow{}, errors.New("request has no session")
	}
	sessJSON, err := json.Marshal(sess)
	if err != nil {
		return requestRow{}, fmt.Errorf("encode session: %w", err)
	}
	form := url.Values{}
	for k, v := range r.GetRequestForm() {
		form[k] = v
	}
	for _, k := range sensitiveFormKeys {
		form.Del(k)
	}
	row := requestRow{
		Signature:         secrets.SignatureKey(signature),
		RequestID:         r.GetID(),
		RequestedAt:       r.GetRequestedAt().UTC(),
		ClientID:          r.GetClient().GetID(),
		Subject:           sess.GetSubject(),
		RequestedScopes:   nonNil(r.GetRequestedScopes()),
		GrantedScopes:     nonNil(r.GetGrantedScopes()),
		RequestedAudience: nonNil(r.GetRequestedAudience()),
		GrantedAudience:   nonNil(r.GetGrantedAudience()),
		FormData:          form.Encode(),
		SessionData:       string(sessJSON),
		Active:            true,
	}
	if ls, ok := sess.(*grantsession.Session); ok {
		row.LoginSessionID = ls.LoginSessionID
	}
	if row.RequestedAt.IsZero() {
		row.RequestedAt = s.nowUTC()
	}
	if exp := sess.GetExpiresAt(kind); !exp.IsZero() {
		e := exp.UTC()
		row.ExpiresAt = &e
	}
	return row, nil
}

func nonNil(a []string) []string {
	if a == nil {
		return []string{}
	}
	return a
}

// toRequest rebuilds the fosite request. The session is decoded into the
// prototype fosite passes, or into a fresh grantsession.Session when it passes nil
// (revocation does).
func (s *Store) toRequest(ctx context.Context, row *requestRow, prototype fosite.Session) (*fosite.Request, error) {
	client, err := s.GetClient(ctx, row.ClientID)
	if err != nil {
		return nil, err
	}
	sess := prototype
	if sess == nil {
		sess = grantsession.New("")
	}
	if err := json.Unmarshal([]byte(row.SessionData), sess); err != nil {
		return nil, fmt.Errorf("decode session of request %s: %w", row.RequestID, err)
	}
	form, err := url.ParseQuery(row.FormData)
	if err != nil {
		return nil, fmt.Errorf("decode form of request %s: %w", row.RequestID, err)
	}
	return &fosite.Request{
		ID:                row.RequestID,
		RequestedAt:       row.RequestedAt,
		Client:            client,
		RequestedScope:    row.RequestedScopes,
		GrantedScope:      row.GrantedScopes,
		RequestedAudience: row.RequestedAudience,
		GrantedAudience:   row.GrantedAudience,
		Form:              form,
		Session:           sess,
	}, nil
}

func (s *Store) createRow(ctx context.Context, table string, row any) error {
	if err := s.db(ctx).Table(table).Create(row).Error; err != nil {
		return fmt.Errorf("store %s: %w", table, translate(err))
	}
	return nil
}

func (s *Store) create(ctx context.Context, table, signature string, r fosite.Requester, kind fosite.TokenType) error {
	row, err := s.newRow(signature, r, kind)
	if err != nil {
		return err
	}
	return s.createRow(ctx, table, &row)
}

// find loads a row and its request. It returns the request even for an
// inactive row, together with inactiveErr, because fosite needs the request
// to revoke the grant when a used code or rotated refresh token comes back.
func (s *Store) find(ctx context.Context, table, signature string, prototype fosite.Session, inactiveErr error) (fosite.Requester, error) {
	var row requestRow
	if err := s.db(ctx).Table(table).Where("signature = ?", secrets.SignatureKey(signature)).Take(&row).Error; err != nil {
		return nil, fmt.Errorf("find %s: %w", table, translate(err))
	}
	req, err := s.toRequest(ctx, &row, prototype)
	if err != nil {
		return nil, err
	}
	if !row.Active {
		return req, fmt.Errorf("find %s: %w", table, inactiveErr)
	}
	return req, nil
}

func (s *Store) delete(ctx context.Context, table, signature string) error {
	if err := s.db(ctx).Table(table).Where("signature = ?", secrets.SignatureKey(signature)).Delete(&requestRow{}).Error; err != nil {
		return fmt.Errorf("delete %s: %w", table, translate(err))
	}
	return nil
}

// deactivate is the conditional update that makes single-use things single
// use: of two concurrent callers exactly one sees a row change, and the other
// gets lost, which the caller turns into a clean protocol error.
func (s *Store) deactivate(ctx context.Context, table, signature string, extra map[string]any, lost error) error {
	set := map[string]any{"active": false}
	for k, v := range extra {
		set[k] = v
	}
	res := s.db(ctx).Table(table).Where("signature = ? AND active = ?", secrets.SignatureKey(signature), true).Updates(set)
	if res.Error != nil {
		return fmt.Errorf("deactivate %s: %w", table, translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("deactivate %s: %w", table, lost)
	}
	return nil
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. A code
// issued under a browser login session also records that the grant belongs
// to it, so that logout finds the grant for as long as it can live.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	row, err := s.newRow(code, r, fosite.AuthorizeCode)
	if err != nil {
		return err
	}
	if row.LoginSessionID == "" {
		return s.createRow(ctx, tableCode, &row)
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.createRow(ctx, tableCode, &row); err != nil {
			return err
		}
		return s.linkGrant(ctx, row.LoginSessionID, row.RequestID, row.ClientID)
	})
}

// GetAuthorizeCodeSession returns the request and ErrInvalidatedAuthorizeCode
// for a used code.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, code string, sess fosite.Session) (fosite.Requester, error) {
	return s.find(ctx, tableCode, code, sess, fosite.ErrInvalidatedAuthorizeCode)
}

// InvalidateAuthorizeCodeSession marks a code used. Of two racing
// redemptions only one succeeds; the other gets ErrInvalidatedAuthorizeCode.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	return s.deactivate(ctx, tableCode, code, nil, fosite.ErrInvalidatedAuthorizeCode)
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, tableAccess, signature, r, fosite.AccessToken)
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	return s.find(ctx, tableAccess, signature, sess, fosite.ErrInactiveToken)
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, tableAccess, signature)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	row, err := s.newRow(signature, r, fosite.RefreshToken)
	if err != nil {
		return err
	}
	rr := refreshRow{Request: row}
	if accessSignature != "" {
		rr.AccessTokenSignature = secrets.SignatureKey(accessSignature)
	}
	return s.createRow(ctx, tableRefresh, &rr)
}

// GetRefreshTokenSession returns the request and ErrInactiveToken for a
// rotated or revoked token, so fosite can revoke the grant on reuse.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	return s.find(ctx, tableRefresh, signature, sess, fosite.ErrInactiveToken)
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, tableRefresh, signature)
}

// RotateRefreshToken is in the store only because fosite's
// oauth2.RefreshTokenStorage requires it (see the assertions above):
// Latchkey's refresh handler (internal/oauth/refresh.go) rotates with
// RotateRefreshTokenOnce, which also stores the successor and checks the
// deny-lists. Should anything call this one, it is still correct: a
// conditional update under the grant's lock, so of two racing rotations
// the loser gets ErrSerializationFailure.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.lockGrants(ctx, requestID); err != nil {
			return err
		}
		err := s.deactivate(ctx, tableRefresh, signature, map[string]any{"rotated_at": s.nowUTC()}, fosite.ErrSerializationFailure)
		if err != nil {
			return fmt.Errorf("rotate refresh token of request %s: %w", requestID, err)
		}
		return nil
	})
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage; the key is the
// authorization code's signature.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, tablePKCE, signature, r, fosite.AuthorizeCode)
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, sess fosite.Session) (fosite.Requester, error) {
	return s.find(ctx, tablePKCE, signature, sess, fosite.ErrNotFound)
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.delete(ctx, tablePKCE, signature)
}

type jtiRow struct {
	JTI       string    `gorm:"column:jti;primaryKey"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (jtiRow) TableName() string { return "client_assertion_jtis" }

// ClientAssertionJWTValid answers fosite.ErrJTIKnown for a client assertion
// whose jti was seen and has not yet expired (RFC 7523 §3).
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	var n int64
	err := s.db(ctx).Model(&jtiRow{}).
		Where("jti = ? AND expires_at > ?", secrets.SignatureKey(jti), s.nowUTC()).Count(&n).Error
	if err != nil {
		return fmt.Errorf("check client assertion jti: %w", translate(err))
	}
	if n > 0 {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT records a jti until exp. A concurrent second use of
// the same jti loses on the primary key and gets fosite.ErrJTIKnown.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	key := secrets.SignatureKey(jti)
	return s.InTx(ctx, func(ctx context.Context) error {
		// An expired row of the same jti may be replaced.
		if err := s.db(ctx).Where("jti = ? AND expires_at <= ?", key, s.nowUTC()).Delete(&jtiRow{}).Error; err != nil {
			return fmt.Errorf("expire client assertion jti: %w", translate(err))
		}
		if err := s.db(ctx).Create(&jtiRow{JTI: key, ExpiresAt: exp.UTC()}).Error; err != nil {
			if err = translate(err); errors.Is(err, ErrAlreadyExists) {
				return fosite.ErrJTIKnown
			}
			return fmt.Errorf("store client assertion jti: %w", err)
		}
		return nil
	})
}
