package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/latchkey/latchkey/internal/secrets"
)

// maxProofBatch bounds how many spends one statement carries, and so its
// length and the parameters it binds.
const maxProofBatch = 64

// SpendDPoPProof records a DPoP proof as used until expires and reports
// whether this call was the first to use it (RFC 9449 §11.1). key is the
// caller's scoped identifier of the proof (its key's thumbprint and its
// jti); it is stored hashed. A conditional insert admits exactly one of
// any number of concurrent spenders on every instance, and a row whose
// proof can no longer be accepted anyway (expired) is taken over rather
// than blocking the key forever.
//
// Spends that arrive while another is in flight are grouped into the next
// statement (proofSpends): a proof costs the database a row, not a round
// trip and a commit of its own. A spend that finds nothing in flight goes
// at once, so grouping adds no wait when the server is idle.
//
// On PostgreSQL the statement's transaction commits without waiting for
// the WAL flush (synchronous_commit off, for this statement only): the
// conditional insert is still atomic and still seen by every instance at
// once; what a database crash can lose is the last fraction of a second of
// spent proofs, each of which would be accepted once more only within its
// 60 s window.
func (s *Store) SpendDPoPProof(ctx context.Context, key string, expires time.Time) (bool, error) {
	p := &proofSpend{jti: secrets.SignatureKey(key), expires: expires.UTC(), done: make(chan struct{})}
	if _, inTx := ctx.Value(txKey{}).(*txState); inTx {
		// Part of the caller's transaction, so not anybody else's.
		s.spendProofs(ctx, []*proofSpend{p})
		return p.spent, p.err
	}
	q := &s.proofSpends
	q.mu.Lock()
	q.waiting = append(q.waiting, p)
	if q.running {
		q.mu.Unlock()
		select {
		case <-p.done:
		case <-ctx.Done():
			if q.withdraw(p) {
				return false, fmt.Errorf("spend dpop proof: %w", ctx.Err())
			}
			// Already in a statement: its answer is on its way.
			<-p.done
		}
		return p.spent, p.err
	}
	q.running = true
	q.mu.Unlock()
	s.drainProofSpends(ctx)
	return p.spent, p.err
}

// proofSpend is one spend waiting for, or carried by, a statement.
type proofSpend struct {
	jti     string
	expires time.Time
	spent   bool
	err     error
	// done is closed once spent and err are set.
	done chan struct{}
}

// proofSpends queues the spends that arrive while a statement is in
// flight. running is true from the moment one caller takes the queue
// until a statement finishes and finds it empty.
type proofSpends struct {
	mu      sync.Mutex
	waiting []*proofSpend
	running bool
}

// withdraw takes p out of the queue if no statement has taken it yet.
func (q *proofSpends) withdraw(p *proofSpend) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, w := range q.waiting {
		if w == p {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			return true
		}
	}
	return false
}

// drainProofSpends sends the queued spends, at most maxProofBatch per
// statement. The caller's own statement runs on its goroutine, so its
// request waits for nothing but its own batch; what queued meanwhile goes
// out from a new goroutine, which keeps going while spends keep coming.
// The statement does not stop with the caller's context: it carries other
// requests' spends too.
func (s *Store) drainProofSpends(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	q := &s.proofSpends
	q.mu.Lock()
	n := min(len(q.waiting), maxProofBatch)
	batch := append([]*proofSpend(nil), q.waiting[:n]...)
	q.waiting = append(q.waiting[:0], q.waiting[n:]...)
	q.mu.Unlock()

	s.spendProofs(ctx, batch)

	q.mu.Lock()
	more := len(q.waiting) > 0
	q.running = more
	q.mu.Unlock()
	if more {
		go s.drainProofSpends(ctx)
	}
}

// spendProofs runs one statement for batch and answers each spend. A jti
// twice in one batch is spent by its first occurrence: one statement may
// not touch a row twice.
func (s *Store) spendProofs(ctx context.Context, batch []*proofSpend) {
	defer func() {
		for _, p := range batch {
			close(p.done)
		}
	}()
	first := make(map[string]*proofSpend, len(batch))
	rows := make([]string, 0, len(batch))
	args := make([]any, 0, 2*len(batch)+1)
	row := "(?, ?)"
	if s.dialect == DialectPostgres {
		// Inside a SELECT the values' types are not taken from the
		// table, so they are named.
		row = "(?::text, ?::timestamptz)"
	}
	for _, p := range batch {
		if _, dup := first[p.jti]; dup {
			continue
		}
		first[p.jti] = p
		rows = append(rows, row)
		args = append(args, p.jti, p.expires)
	}
	args = append(args, s.nowUTC())
	values := strings.Join(rows, ", ")
	q := "INSERT INTO dpop_proofs (jti, expires_at) VALUES " + values +
		" ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_proofs.expires_at <= ? RETURNING jti"
	if _, inTx := ctx.Value(txKey{}).(*txState); s.dialect == DialectPostgres && !inTx {
		// set_config(…, true) lasts until the end of the statement's
		// implicit transaction, so its commit reads it; the CTE runs
		// only because the insert selects from it.
		q = "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)) " +
			"INSERT INTO dpop_proofs (jti, expires_at) SELECT v.jti, v.expires_at FROM async, (VALUES " + values + ") AS v (jti, expires_at)" +
			" ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_proofs.expires_at <= ? RETURNING jti"
	}
	var won []string
	if err := s.db(ctx).Raw(q, args...).Scan(&won).Error; err != nil {
		err = fmt.Errorf("spend dpop proof: %w", translate(err))
		for _, p := range batch {
			p.err = err
		}
		return
	}
	for _, jti := range won {
		if p := first[jti]; p != nil {
			p.spent = true
		}
	}
}
