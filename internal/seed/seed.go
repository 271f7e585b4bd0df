package seed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/latchkey/latchkey/internal/grantsession"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/ory/fosite"
)

// Options say what to write.
type Options struct {
	Grants int
	// RevokedGrants of the grants, spread evenly, were revoked: their
	// refresh tokens inactive, no access token, a revoked_grants row.
	RevokedGrants int
	// RevokedJTIs is the size of the JWT deny-list (revoked_jtis).
	RevokedJTIs int
	Users       int
	Clients     int
	// AccessTokens writes each grant's opaque access token (the server
	// writes none when it issues JWTs).
	AccessTokens bool
	// Rotated is how many rotated (inactive) predecessors each grant's
	// live refresh token has: rows that stay until they expire.
	Rotated int
	// ExpiredFraction of the grants and of the revoked JWT ids are past
	// their expiry already: rows for the janitor.
	ExpiredFraction float64
	// RefreshTTL spreads the live refresh tokens' expiry over
	// (now, now+RefreshTTL]; AccessTTL is the access tokens'.
	RefreshTTL, AccessTTL time.Duration
	// DenyWindow spreads the live revoked JWT ids' expiry over
	// (now, now+DenyWindow]. A real deny-list row lives no longer than an
	// access token; a longer window keeps the list at its size for the
	// whole measurement instead of emptying it within AccessTTL.
	DenyWindow time.Duration
	// Batch is the number of grants, users or JWT ids per transaction.
	Batch  int
	Secret secrets.SystemSecrets
	// Now is the clock the expiries count from (nil: time.Now).
	Now func() time.Time
	// Progress, if set, is called after every batch.
	Progress func(Progress)
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var errs []error
	for _, c := range []struct {
		name string
		n    int
	}{{"grants", o.Grants}, {"revoked grants", o.RevokedGrants}, {"revoked jtis", o.RevokedJTIs}, {"users", o.Users}, {"rotated", o.Rotated}} {
		if c.n < 0 {
			errs = append(errs, fmt.Errorf("%s is %d, must not be negative", c.name, c.n))
		}
	}
	if o.RevokedGrants > o.Grants {
		errs = append(errs, fmt.Errorf("revoked grants (%d) is more than grants (%d)", o.RevokedGrants, o.Grants))
	}
	if o.Grants > 0 && (o.Users < 1 || o.Clients < 1) {
		errs = append(errs, errors.New("grants need at least one user and one client to belong to"))
	}
	if o.ExpiredFraction < 0 || o.ExpiredFraction >= 1 {
		errs = append(errs, fmt.Errorf("expired fraction is %g, must be in [0, 1)", o.ExpiredFraction))
	}
	if o.RefreshTTL <= 0 || o.AccessTTL <= 0 || o.DenyWindow <= 0 {
		errs = append(errs, errors.New("refresh TTL, access TTL and deny window must be positive"))
	}
	if o.Batch < 1 {
		errs = append(errs, fmt.Errorf("batch is %d, must be at least 1", o.Batch))
	}
	if len(o.Secret) == 0 {
		errs = append(errs, errors.New("no system secret: set LATCHKEY_SECRET to the server's"))
	}
	return errors.Join(errs...)
}

// Progress is where a seed stands after a batch.
type Progress struct {
	Kind        string // "users", "grants" or "revoked jtis"
	Done, Total int    // of that kind
	Rows        int64  // rows written so far, every table
	Elapsed     time.Duration
}

// Stats are what a seed did.
type Stats struct {
	Rows    int64 // rows written
	Skipped int   // batches found already written
	Elapsed time.Duration
}

// RowsPerSecond is the write rate.
func (s Stats) RowsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Rows) / s.Elapsed.Seconds()
}

type seeder struct {
	opts   Options
	conn   *pgx.Conn
	tok    *tokens
	now    time.Time
	start  time.Time
	stats  Stats
	pwHash string
	// successor stands for the sealed successor a rotated row keeps; it is
	// opened only within the grace period, long past for every seeded row.
	successor []byte
}

// Seed writes the rows opts ask for into the migrated PostgreSQL database
// of conn, skipping what an earlier run with the same options wrote.
func Seed(ctx context.Context, conn *pgx.Conn, opts Options) (Stats, error) {
	if err := opts.Validate(); err != nil {
		return Stats{}, err
	}
	tok, err := newTokens(opts.Secret)
	if err != nil {
		return Stats{}, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &seeder{opts: opts, conn: conn, tok: tok, now: opts.Now().UTC(), start: time.Now(), successor: make([]byte, 122)}
	// One argon2id hash for every user: hashing a million passwords would
	// take an hour and measure nothing the server does.
	if s.pwHash, err = secrets.HashPassword(SeedPassword, secrets.DefaultArgon2Params); err != nil {
		return Stats{}, err
	}
	if err := s.clients(ctx); err != nil {
		return s.stats, err
	}
	if err := s.each(ctx, "users", opts.Users, func(lo int) marker { return marker{"users", "id", UserID(lo)} }, s.userBatch); err != nil {
		return s.stats, err
	}
	if err := s.each(ctx, "grants", opts.Grants, func(lo int) marker {
		_, key := s.tok.token("ory_rt_", kindRefresh, lo)
		return marker{"refresh_tokens", "signature", key}
	}, s.grantBatch); err != nil {
		return s.stats, err
	}
	if err := s.each(ctx, "revoked jtis", opts.RevokedJTIs, func(lo int) marker { return marker{"revoked_jtis", "jti", jtiKey(lo)} }, s.jtiBatch); err != nil {
		return s.stats, err
	}
	s.stats.Elapsed = time.Since(s.start)
	return s.stats, nil
}

// SeedPassword is every seeded user's password.
const SeedPassword = "seed-password"

// batch is one transaction's rows.
type batch struct{ tables []table }

// marker names a batch's first row, which exists exactly when the batch was
// written: the seed makes it one the janitor never deletes (live, not
// revoked).
type marker struct{ table, key, value string }

type table struct {
	name string
	cols []string
	rows [][]any
}

func (s *seeder) each(ctx context.Context, kind string, total int, mark func(lo int) marker, build func(lo, hi int) batch) error {
	for lo := 0; lo < total; lo += s.opts.Batch {
		hi := min(lo+s.opts.Batch, total)
		if err := s.write(ctx, mark(lo), func() batch { return build(lo, hi) }); err != nil {
			return fmt.Errorf("%s %d-%d: %w", kind, lo, hi-1, err)
		}
		if s.opts.Progress != nil {
			s.opts.Progress(Progress{Kind: kind, Done: hi, Total: total, Rows: s.stats.Rows, Elapsed: time.Since(s.start)})
		}
	}
	return nil
}

// write copies a batch in one transaction, unless its marker row is there.
// A batch that collides with rows already present (its marker was written
// and later deleted, or a run was interrupted mid-way through an earlier
// version of the batch) is written again through a staging table with ON
// CONFLICT DO NOTHING: slower, and needed only then.
func (s *seeder) write(ctx context.Context, m marker, build func() batch) error {
	var done bool
	if err := s.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+m.table+" WHERE "+m.key+" = $1)", m.value).Scan(&done); err != nil {
		return err
	}
	if done {
		s.stats.Skipped++
		return nil
	}
	b := build()
	n, err := s.copy(ctx, b, false)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		n, err = s.copy(ctx, b, true)
	}
	if err != nil {
		return err
	}
	s.stats.Rows += n
	return nil
}

func (s *seeder) copy(ctx context.Context, b batch, staged bool) (int64, error) {
	var total int64
	err := pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		for _, t := range b.tables {
			if len(t.rows) == 0 {
				continue
			}
			if !staged {
				n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(t.rows))
				if err != nil {
					return fmt.Errorf("copy %s: %w", t.name, err)
				}
				total += n
				continue
			}
			stage := "seed_stage_" + t.name
			if _, err := tx.Exec(ctx, "CREATE TEMP TABLE "+stage+" (LIKE "+t.name+" INCLUDING DEFAULTS) ON COMMIT DROP"); err != nil {
				return fmt.Errorf("stage %s: %w", t.name, err)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{stage}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
				return fmt.Errorf("copy %s: %w", stage, err)
			}
			cols := strings.Join(t.cols, ", ")
			tag, err := tx.Exec(ctx, "INSERT INTO "+t.name+" ("+cols+") SELECT "+cols+" FROM "+stage+" ON CONFLICT DO NOTHING")
			if err != nil {
				return fmt.Errorf("insert %s: %w", t.name, err)
			}
			total += tag.RowsAffected()
		}
		return nil
	})
	return total, err
}

// clients are a handful of trusted confidential clients, of the shape the
// admin API registers. Their secret is random and shown to nobody: the
// grants need them to exist, not to authenticate.
func (s *seeder) clients(ctx context.Context) error {
	hasher, err := secrets.NewClientSecretHasher(s.opts.Secret)
	if err != nil {
		return err
	}
	for c := range s.opts.Clients {
		secret, err := secrets.NewClientSecret()
		if err != nil {
			return err
		}
		hash, err := hasher.Hash(ctx, []byte(secret))
		if err != nil {
			return err
		}
		tag, err := s.conn.Exec(ctx, `INSERT INTO clients (id, name, secret_hash, redirect_uris, grant_types, response_types,
  scopes, audience, token_endpoint_auth_method, trusted, application_type, created_at, updated_at)
VALUES ($1, $2, $3, '["https://app.example/callback"]', '["authorization_code","password","refresh_token"]', '["code"]',
  '["openid","read","offline_access"]', '[]', 'client_secret_basic', true, 'web', $4, $4)
ON CONFLICT (id) DO NOTHING`, ClientID(c), fmt.Sprintf("Seeded client %d", c), hash, s.now)
		if err != nil {
			return fmt.Errorf("client %s: %w", ClientID(c), err)
		}
		s.stats.Rows += tag.RowsAffected()
	}
	return nil
}

var userCols = []string{"id", "username", "password_hash", "email", "email_verified", "name", "groups", "created_at", "updated_at"}

func (s *seeder) userBatch(lo, hi int) batch {
	t := table{name: "users", cols: userCols}
	for k := lo; k < hi; k++ {
		created := s.now.Add(-time.Duration(unit(10, uint64(k)) * float64(365*24*time.Hour)))
		t.rows = append(t.rows, []any{UserID(k), Username(k), s.pwHash, Username(k) + "@bench.example", true,
			fmt.Sprintf("Seed User %d", k), "[]", created, created})
	}
	return batch{tables: []table{t}}
}

var jtiCols = []string{"jti", "expires_at"}

func (s *seeder) jtiBatch(lo, hi int) batch {
	t := table{name: "revoked_jtis", cols: jtiCols}
	e := s.opts.ExpiredFraction
	for j := lo; j < hi; j++ {
		u := unit(20, uint64(j))
		var exp time.Time
		if u < e && j != lo {
			exp = s.now.Add(-time.Duration(u / e * float64(s.opts.AccessTTL)))
		} else {
			exp = s.now.Add(time.Duration((u - e) / (1 - e) * float64(s.opts.DenyWindow))).Add(time.Minute)
		}
		t.rows = append(t.rows, []any{jtiKey(j), exp})
	}
	return batch{tables: []table{t}}
}

var (
	refreshCols = []string{"signature", "request_id", "requested_at", "client_id", "subject", "requested_scopes", "granted_scopes",
		"requested_audience", "granted_audience", "form_data", "session_data", "active", "expires_at", "access_token_signature",
		"rotated_at", "login_session_id", "successor"}
	accessCols = []string{"signature", "request_id", "requested_at", "client_id", "subject", "requested_scopes", "granted_scopes",
		"requested_audience", "granted_audience", "form_data", "session_data", "active", "expires_at", "login_session_id"}
	revokedGrantCols = []string{"request_id", "expires_at"}
)

const (
	grantScopes = `["read","offline_access"]`
	refreshForm = "grant_type=refresh_token"
)

// grantBatch writes grants [lo, hi). A grant is a password grant of user
// i mod Users through client i mod Clients, refreshed Rotated times: its
// live refresh token was issued at a moment spread evenly over the refresh
// TTL, so expiries are too. Its first grant (the batch's marker) is always
// live.
func (s *seeder) grantBatch(lo, hi int) batch {
	refresh := table{name: "refresh_tokens", cols: refreshCols}
	access := table{name: "access_tokens", cols: accessCols}
	revoked := table{name: "revoked_grants", cols: revokedGrantCols}
	for i := lo; i < hi; i++ {
		g := s.grant(i, i == lo)
		_, rtKey := s.tok.token("ory_rt_", kindRefresh, i)
		_, atKey := s.tok.token("ory_at_", kindAccess, i)
		sess := s.session(g)
		atSig := ""
		if s.opts.AccessTokens && !g.revoked {
			atSig = atKey
			access.rows = append(access.rows, []any{atKey, g.id, g.accessIssued, g.client, g.subject, grantScopes, grantScopes,
				"[]", "[]", refreshForm, sess, true, g.accessExp, ""})
		}
		refresh.rows = append(refresh.rows, []any{rtKey, g.id, g.issued, g.client, g.subject, grantScopes, grantScopes,
			"[]", "[]", refreshForm, sess, !g.revoked, g.refreshExp, atSig, nil, "", nil})
		// Predecessors, newest first, each rotated when the next was issued.
		issued := g.issued
		for k := range s.opts.Rotated {
			prev := issued.Add(-time.Duration(1+unit(uint64(30+k), uint64(i))*23) * time.Hour)
			_, key := s.tok.token("ory_rt_", uint64(kindRotated+k), i)
			prevSess := s.sessionAt(g, prev)
			refresh.rows = append(refresh.rows, []any{key, g.id, prev, g.client, g.subject, grantScopes, grantScopes,
				"[]", "[]", refreshForm, prevSess, false, prev.Add(s.opts.RefreshTTL), "", issued, "", s.successor})
			issued = prev
		}
		if g.revoked {
			revoked.rows = append(revoked.rows, []any{g.id, g.revokedUntil})
		}
	}
	return batch{tables: []table{refresh, access, revoked}}
}

type grant struct {
	id, client, subject, username         string
	granted, issued, refreshExp           time.Time
	accessIssued, accessExp, revokedUntil time.Time
	revoked                               bool
}

func (s *seeder) grant(i int, marker bool) grant {
	o := s.opts
	g := grant{id: GrantID(i), client: ClientID(i % o.Clients), subject: UserID(i % o.Users), username: Username(i % o.Users)}
	u := unit(1, uint64(i))
	if marker {
		// At least half the refresh TTL still to live: a rerun within
		// that time finds every batch by its first grant.
		u = max(u, (1+o.ExpiredFraction)/2)
	}
	if u < o.ExpiredFraction {
		// Expired up to an hour ago: what a janitor pass every few
		// minutes, or one that fell behind, finds.
		g.refreshExp = s.now.Add(-time.Duration(u / o.ExpiredFraction * float64(time.Hour)))
	} else {
		g.refreshExp = s.now.Add(time.Duration((u - o.ExpiredFraction) / (1 - o.ExpiredFraction) * float64(o.RefreshTTL))).Add(time.Second)
	}
	g.issued = g.refreshExp.Add(-o.RefreshTTL)
	g.granted = g.issued.Add(-time.Duration(o.Rotated) * 24 * time.Hour)
	// A live grant holds a live access token: the access table at its
	// largest, every grant used within the last access TTL.
	g.accessExp = s.now.Add(time.Duration(unit(2, uint64(i))*float64(o.AccessTTL)) + time.Second)
	if g.refreshExp.Before(s.now) {
		g.accessExp = g.refreshExp.Add(-o.RefreshTTL).Add(o.AccessTTL)
	}
	g.accessIssued = g.accessExp.Add(-o.AccessTTL)
	if o.RevokedGrants > 0 && !marker {
		every := o.Grants / o.RevokedGrants
		g.revoked = i%every == every/2 && i/every < o.RevokedGrants
	}
	if g.revoked {
		// Revoked some time after its last refresh; the record lasts as
		// long as an access token from before the revocation can.
		at := g.issued.Add(time.Duration(unit(3, uint64(i)) * float64(s.now.Sub(g.issued))))
		g.revokedUntil = at.Add(o.AccessTTL + time.Minute)
	}
	return g
}

// session is the grant's session as the store writes it (the JSON of
// grantsession.Session), with the expiries of its latest tokens.
func (s *seeder) session(g grant) string {
	return s.sessionJSON(g, g.accessExp, g.refreshExp)
}

func (s *seeder) sessionAt(g grant, issued time.Time) string {
	return s.sessionJSON(g, issued.Add(s.opts.AccessTTL), issued.Add(s.opts.RefreshTTL))
}

func (s *seeder) sessionJSON(g grant, accessExp, refreshExp time.Time) string {
	sess := grantsession.New(g.subject)
	sess.Username = g.username
	sess.AuthTime, sess.GrantedAt = g.granted, g.granted
	sess.AMR = []string{"pwd"}
	sess.SetExpiresAt(fosite.AccessToken, accessExp)
	sess.SetExpiresAt(fosite.RefreshToken, refreshExp)
	b, err := json.Marshal(sess)
	if err != nil {
		// A session of plain fields always encodes.
		panic(err)
	}
	return string(b)
}
