// Package janitor deletes expired tokens, codes, sessions, deny-list
// entries and counters. It runs in the background of every instance, but a
// lease in the database lets only one of them work at a time; `latchkey
// janitor` runs one pass for people who prefer cron.
package janitor

import (
	"context"
	"log/slog"
	"time"

	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// Store is what the janitor needs of persistence; *store.Store satisfies
// it (asserted in internal/server).
type Store interface {
	// DeleteExpiredByTable deletes at most batch expired rows of each
	// kind and reports how many it deleted, per table.
	DeleteExpiredByTable(ctx context.Context, r store.Retention, batch int) (map[string]int64, error)
	// AcquireLease takes or renews the named lease for holder; only one
	// holder at a time gets true.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// LeaseName is the lease instances compete for.
const LeaseName = "janitor"

// Janitor cleans up one database.
type Janitor struct {
	store     Store
	retention store.Retention
	log       *slog.Logger
	holder    string
	// Batch bounds each statement; Pause between batches lets the
	// token endpoints have the database.
	Batch    int
	Pause    time.Duration
	Interval time.Duration
	// Metrics, when set, counts passes and deleted rows by table; Now
	// dates the last good pass (time.Now when nil).
	Metrics *metrics.Metrics
	Now     func() time.Time
}

// New returns a janitor with its own lease holder ID.
func New(st Store, r store.Retention, log *slog.Logger) *Janitor {
	holder, _ := secrets.RandomToken(12)
	return &Janitor{store: st, retention: r, log: log, holder: holder, Batch: 500, Pause: 50 * time.Millisecond, Interval: 5 * time.Minute}
}

// Pass deletes expired rows batch by batch until it has caught up (no
// table filled a batch), renewing the lease as it goes. It returns how many rows it deleted, and false if
// another instance holds the lease.
func (j *Janitor) Pass(ctx context.Context) (int64, bool, error) {
	n, held, err := j.pass(ctx)
	j.count(held, err)
	return n, held, err
}

func (j *Janitor) pass(ctx context.Context) (int64, bool, error) {
	leaseTTL := j.Interval + time.Minute
	ok, err := j.store.AcquireLease(ctx, LeaseName, j.holder, leaseTTL)
	if err != nil || !ok {
		return 0, false, err
	}
	// Given back when the pass ends, so that a cron run or another instance
	// need not wait for it to time out.
	defer func() { _ = j.store.ReleaseLease(context.WithoutCancel(ctx), LeaseName, j.holder) }()
	var total int64
	for {
		byTable, err := j.store.DeleteExpiredByTable(ctx, j.retention, j.Batch)
		var n int64
		for table, rows := range byTable {
			n += rows
			if j.Metrics != nil {
				j.Metrics.JanitorDeleted.WithLabelValues(table).Add(float64(rows))
			}
		}
		total += n
		if err != nil {
			return total, true, err
		}
		// Caught up when no table filled its batch: what had expired when
		// this round began is gone. Rows expiring meanwhile wait for the
		// next pass; waiting for a round that finds nothing would, under a
		// steady stream of expiring tokens, never end the pass (and never
		// date the last good one, which the alert watches).
		if caughtUp(byTable, j.Batch) {
			return total, true, nil
		}
		if ok, err := j.store.AcquireLease(ctx, LeaseName, j.holder, leaseTTL); err != nil || !ok {
			return total, true, err
		}
		select {
		case <-ctx.Done():
			return total, true, ctx.Err()
		case <-time.After(j.Pause):
		}
	}
}

func caughtUp(byTable map[string]int64, batch int) bool {
	for _, rows := range byTable {
		if rows >= int64(batch) {
			return false
		}
	}
	return true
}

// Run makes a pass every Interval until ctx ends.
func (j *Janitor) Run(ctx context.Context) {
	t := time.NewTicker(j.Interval)
	defer t.Stop()
	for {
		n, held, err := j.Pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			j.log.WarnContext(ctx, "janitor pass failed", "error", err, "deleted", n)
		case held && n > 0:
			j.log.InfoContext(ctx, "janitor pass", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// count records a pass's result: the alert that the janitor stopped
// running watches the last good pass of any instance.
func (j *Janitor) count(held bool, err error) {
	if j.Metrics == nil {
		return
	}
	switch {
	case err != nil:
		j.Metrics.JanitorPasses.WithLabelValues("error").Inc()
	case !held:
		j.Metrics.JanitorPasses.WithLabelValues("skipped").Inc()
	default:
		j.Metrics.JanitorPasses.WithLabelValues("ok").Inc()
		now := time.Now
		if j.Now != nil {
			now = j.Now
		}
		j.Metrics.JanitorLastPass.Set(float64(now().Unix()))
	}
}
