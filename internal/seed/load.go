package seed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/latchkey/latchkey/internal/secrets"
)

// LoadOptions configure Load.
type LoadOptions struct {
	// Rate is the number of new grants a second.
	Rate int
	// TTL is how long the new grants' refresh and access tokens live. A
	// short one (a minute) makes the janitor face, after the first TTL,
	// as many expired grants a second as arrive: the steady state of a
	// server issuing Rate grants a second, without waiting a month.
	TTL time.Duration
	// Duration bounds the run (0: until ctx ends).
	Duration time.Duration
	// Users and Clients are how many of each the seed wrote; the new
	// grants belong to them.
	Users, Clients int
	Secret         secrets.SystemSecrets
	// Report, if set, is called about every five seconds and at the end.
	Report func(LoadStats)
}

// LoadStats are what Load wrote.
type LoadStats struct {
	Grants  int
	Elapsed time.Duration
	// Behind is how many grants the run was short of Rate × Elapsed when
	// it ended: more than a tick's worth means the database could not take
	// the rate.
	Behind int
}

// loadTick is how often a batch of new grants is written: often enough
// that the load is steady, seldom enough that a batch is one COPY.
const loadTick = 100 * time.Millisecond

// Load writes Rate new grants a second (a refresh token and an opaque
// access token each, random like the server's) until Duration passes or
// ctx ends, catching up when a batch was slow.
func Load(ctx context.Context, conn *pgx.Conn, o LoadOptions) (LoadStats, error) {
	if o.Rate < 1 || o.TTL <= 0 || o.Users < 1 || o.Clients < 1 || len(o.Secret) == 0 {
		return LoadStats{}, errors.New("load needs a positive rate and TTL, seeded users and clients, and the system secret")
	}
	// The end of Duration stops the loop between batches, never a COPY
	// in flight: pgx closes a connection whose query is cancelled.
	var end <-chan time.Time
	if o.Duration > 0 {
		timer := time.NewTimer(o.Duration)
		defer timer.Stop()
		end = timer.C
	}
	s := &seeder{opts: Options{Users: o.Users, Clients: o.Clients, AccessTTL: o.TTL, RefreshTTL: o.TTL}, conn: conn}
	start := time.Now()
	var st LoadStats
	lastReport := start
	t := time.NewTicker(loadTick)
	defer t.Stop()
	for {
		var done bool
		select {
		case <-ctx.Done():
			done = true
		case <-end:
			done = true
		case <-t.C:
		}
		if done {
			st.Elapsed = time.Since(start)
			st.Behind = max(0, int(float64(o.Rate)*st.Elapsed.Seconds())-st.Grants)
			if o.Report != nil {
				o.Report(st)
			}
			return st, nil
		}
		due := int(float64(o.Rate)*time.Since(start).Seconds()) - st.Grants
		// At most a second's worth at once: a stalled database is not
		// hit with everything it missed in one transaction.
		n := min(due, o.Rate)
		if n <= 0 {
			continue
		}
		b, err := s.loadBatch(n, st.Grants)
		if err != nil {
			return st, err
		}
		if _, err := s.copy(ctx, b, false); err != nil {
			if ctx.Err() != nil {
				continue
			}
			return st, fmt.Errorf("write load grants: %w", err)
		}
		st.Grants += n
		if o.Report != nil && time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			st.Elapsed = time.Since(start)
			o.Report(st)
		}
	}
}

// loadBatch is n new grants, numbered from seq for their users and clients.
func (s *seeder) loadBatch(n, seq int) (batch, error) {
	refresh := table{name: "refresh_tokens", cols: refreshCols}
	access := table{name: "access_tokens", cols: accessCols}
	now := time.Now().UTC()
	s.now = now
	for k := range n {
		i := seq + k
		rid, err := secrets.NewID()
		if err != nil {
			return batch{}, err
		}
		rt, err := secrets.NewID()
		if err != nil {
			return batch{}, err
		}
		at, err := secrets.NewID()
		if err != nil {
			return batch{}, err
		}
		rtKey, atKey := secrets.SignatureKey(rt), secrets.SignatureKey(at)
		g := grant{id: rid, client: ClientID(i % s.opts.Clients), subject: UserID(i % s.opts.Users), username: Username(i % s.opts.Users),
			granted: now, issued: now, accessIssued: now, refreshExp: now.Add(s.opts.RefreshTTL), accessExp: now.Add(s.opts.AccessTTL)}
		sess := s.session(g)
		access.rows = append(access.rows, []any{atKey, g.id, now, g.client, g.subject, grantScopes, grantScopes,
			"[]", "[]", "grant_type=password&scope=read+offline_access", sess, true, g.accessExp, ""})
		refresh.rows = append(refresh.rows, []any{rtKey, g.id, now, g.client, g.subject, grantScopes, grantScopes,
			"[]", "[]", "grant_type=password&scope=read+offline_access", sess, true, g.refreshExp, atKey, nil, "", nil})
	}
	return batch{tables: []table{refresh, access}}, nil
}
