package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The revocation deny-list in memory (issue 19 item 4).
//
// IsRevoked runs on every introspection, userinfo call and JWT check, and
// nearly always answers "not revoked": revocations are rare next to checks.
// On PostgreSQL each instance therefore keeps a negative filter of the three
// deny-lists (revoked_jtis, revoked_grants, revoked_subjects) and asks the
// database only when the filter says "maybe"; a definite miss costs no round
// trip. The filter is fed by the notices that migration 00026's triggers send
// on the client-cache channel, over the same listener connection (cache.go).
//
// It is trusted only while both hold:
//   - the listener is proven alive: its heartbeat came back, exactly the
//     state in which the client cache is on. Any loss (an error, a missed
//     heartbeat) turns it off before the listener reconnects, and the
//     filter is dropped;
//   - a full load of the three tables was made after LISTEN began, on the
//     current connection. A revocation committed before the load's queries
//     is in the load; one committed after LISTEN began is announced; a row
//     in both is only added twice. So none falls between the two.
//
// Any doubt means the query: SQLite (one process, no channel), a listener
// that never proved itself (PgBouncer in transaction mode without
// LATCHKEY_DATABASE_LISTEN_URL), the triggers missing (a database not yet
// migrated), a load that failed.
//
// Memory: the 10M-grant target has about 1M live revoked jtis. A map of 1M
// strings would take well over 100 MiB; a set of 64-bit hashes takes 8 MiB as
// a sorted slice, with a small map for what arrived since the last merge. A
// hash collision only makes a miss a "maybe", which the query settles: the
// filter can be wrong only towards asking. The hash is seeded per process
// (maphash), so nobody can choose jtis that collide on purpose to force
// queries. A Bloom filter would be smaller (1.2 MiB at 1 %) but makes one
// check in a hundred ask; 8 MiB is well inside the budget.
//
// Expiry: rows expire (expires_at) and the janitor deletes them, but the
// filter only grows from notices. It is rebuilt every Options.DenyListRebuild
// from the database: the new one is loaded while notices feed both, then
// swapped in, so a rebuild opens no gap.

// Revocation notice payloads, as migration 00026's triggers write them.
const (
	noticeRevokedJTI     = "revoked-jti:"
	noticeRevokedGrant   = "revoked-grant:"
	noticeRevokedSubject = "revoked-subject:" // revoked_at in µs, ':', subject
)

// DefaultDenyListRebuild is how often the in-memory deny-list is reloaded
// from the database, dropping what expired; see Options.DenyListRebuild.
const DefaultDenyListRebuild = 5 * time.Minute

// mergeAt is how many hashes a set collects in its map before they are
// merged into the sorted slice: small enough that the map stays a few
// hundred KiB, large enough that the O(n) merge is rare.
const mergeAt = 4096

// hashSet is a set of 64-bit hashes: a sorted slice, never changed once
// built (a merge makes a new one), and the recent adds.
type hashSet struct {
	sorted []uint64
	recent map[uint64]struct{}
}

func (h *hashSet) has(x uint64) bool {
	if _, ok := h.recent[x]; ok {
		return true
	}
	_, ok := slices.BinarySearch(h.sorted, x)
	return ok
}

func (h *hashSet) add(x uint64) {
	if h.has(x) {
		return
	}
	if h.recent == nil {
		h.recent = map[uint64]struct{}{}
	}
	h.recent[x] = struct{}{}
	if len(h.recent) < mergeAt {
		return
	}
	fresh := make([]uint64, 0, len(h.recent))
	for x := range h.recent {
		fresh = append(fresh, x)
	}
	slices.Sort(fresh)
	// A new slice, merged in one pass: checks holding the old one under
	// the read lock are done with it before this runs (the write lock),
	// and a slice is never changed once built.
	merged := make([]uint64, 0, len(h.sorted)+len(fresh))
	i, j := 0, 0
	for i < len(h.sorted) && j < len(fresh) {
		if h.sorted[i] < fresh[j] {
			merged = append(merged, h.sorted[i])
			i++
		} else {
			merged = append(merged, fresh[j])
			j++
		}
	}
	merged = append(append(merged, h.sorted[i:]...), fresh[j:]...)
	h.sorted, h.recent = merged, nil
}

// denySet is one generation of the filter.
type denySet struct {
	jtis, grants hashSet
	// subjects holds the latest revoked_at (µs since the epoch) of every
	// subject hash: a token issued after it is not revoked.
	subjects map[uint64]int64
}

func newDenySet() *denySet { return &denySet{subjects: map[uint64]int64{}} }

func (d *denySet) addSubject(h uint64, revokedAt int64) {
	if old, ok := d.subjects[h]; !ok || revokedAt > old {
		d.subjects[h] = revokedAt
	}
}

// denyList is the filter and whether it may be trusted.
type denyList struct {
	seed maphash.Seed
	mu   sync.RWMutex
	// cur is the trusted filter, nil while it is not trusted.
	cur *denySet
	// next is the filter being loaded: notices go to it as well as to cur,
	// so that nothing announced during the load is lost at the swap.
	next *denySet
	// gen counts the listener's transitions: a load begun under an older
	// one is thrown away.
	gen uint64
	// heard, if set, is called after a notice was applied (tests time the
	// notification latency with it).
	heard func()
}

func newDenyList() *denyList { return &denyList{seed: maphash.MakeSeed()} }

func (d *denyList) hash(s string) uint64 { return maphash.String(d.seed, s) }

// check says whether a token may be revoked. trusted false means the filter
// cannot tell: ask the database.
func (d *denyList) check(jtiKey, requestID, subject string, issuedAt time.Time) (maybe, trusted bool) {
	hj, hg, hs := d.hash(jtiKey), d.hash(requestID), d.hash(subject)
	d.mu.RLock()
	defer d.mu.RUnlock()
	c := d.cur
	if c == nil {
		return false, false
	}
	if c.jtis.has(hj) || c.grants.has(hg) {
		return true, true
	}
	// revoked_at >= iat as the query compares it; a microsecond of margin
	// for the rounding of iat's nanoseconds.
	if at, ok := c.subjects[hs]; ok && at >= issuedAt.UnixMicro()-1 {
		return true, true
	}
	return false, true
}

// up is called when the listener is proven alive on a new connection; it
// returns the generation the loads of that connection belong to.
func (d *denyList) up() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	d.cur, d.next = nil, nil
	return d.gen
}

// down is called whenever the listener stops being proven alive.
func (d *denyList) down() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	d.cur, d.next = nil, nil
}

// begin starts a load under gen: from now on notices are kept for it.
func (d *denyList) begin(gen uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != d.gen {
		return false
	}
	d.next = newDenySet()
	return true
}

// finish swaps in what a load read together with the notices heard since it
// began; it reports false if the listener went down meanwhile.
func (d *denyList) finish(gen uint64, jtis, grants []uint64, subjects map[uint64]int64) bool {
	slices.Sort(jtis)
	slices.Sort(grants)
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != d.gen || d.next == nil {
		return false
	}
	n := d.next
	n.jtis.sorted, n.grants.sorted = slices.Compact(jtis), slices.Compact(grants)
	for h, at := range subjects {
		n.addSubject(h, at)
	}
	d.cur, d.next = n, nil
	return true
}

// notice applies one payload from the channel; false if it is no
// revocation notice.
func (d *denyList) notice(payload string) bool {
	var apply func(*denySet)
	switch {
	case strings.HasPrefix(payload, noticeRevokedJTI):
		h := d.hash(payload[len(noticeRevokedJTI):])
		apply = func(s *denySet) { s.jtis.add(h) }
	case strings.HasPrefix(payload, noticeRevokedGrant):
		h := d.hash(payload[len(noticeRevokedGrant):])
		apply = func(s *denySet) { s.grants.add(h) }
	case strings.HasPrefix(payload, noticeRevokedSubject):
		at, subject, ok := strings.Cut(payload[len(noticeRevokedSubject):], ":")
		micros, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil {
			// Unreadable: nothing can be trusted to be complete.
			d.down()
			return true
		}
		h := d.hash(subject)
		apply = func(s *denySet) { s.addSubject(h, micros) }
	default:
		return false
	}
	d.mu.Lock()
	for _, s := range []*denySet{d.cur, d.next} {
		if s != nil {
			apply(s)
		}
	}
	heard := d.heard
	d.mu.Unlock()
	if heard != nil {
		heard()
	}
	return true
}

// denyHere puts a revocation into this instance's filter before the row is
// written, so that this instance sees its own revocations at once, not
// after the notice's round trip: the same instance revoking then
// introspecting must see the token revoked. Before the write, not after the
// commit: a transaction that rolls back leaves only a "maybe", which the
// query answers. payload is a notice as the triggers write it.
func (s *Store) denyHere(payload string) { s.deny.notice(payload) }

// trusted reports whether checks are answered from memory.
func (d *denyList) trusted() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cur != nil
}

// RevocationsInMemory reports whether IsRevoked answers "not revoked" from
// the in-memory deny-list, without a query: on PostgreSQL while the
// listener is proven alive and the deny-list was loaded on its connection.
func (s *Store) RevocationsInMemory() bool { return s.deny.trusted() }

// errNoRevocationTriggers means migration 00026 has not run: revocations
// would not be announced.
var errNoRevocationTriggers = errors.New("the revocation notice triggers (migration 00026) are missing")

// keepDenyList loads the deny-list for the listener connection of gen, then
// reloads it every rebuild interval until ctx ends (the connection is lost).
// A failed load is retried with backoff up to the heartbeat: meanwhile
// every check asks the database.
func (s *Store) keepDenyList(ctx context.Context, gen uint64) {
	logged := false
	retry := 50 * time.Millisecond
	for {
		wait := s.denyRebuild
		if err := s.loadDenyList(ctx, gen); err != nil {
			if ctx.Err() != nil {
				return
			}
			// Until Migrate has run this fails at start-up: not worth a
			// warning every time.
			s.log.DebugContext(ctx, "revocation deny-list not loaded; revocations are checked in the database", "error", err)
			wait, retry = retry, min(retry*2, s.heartbeat)
		} else if !logged {
			logged = true
			s.log.DebugContext(ctx, "revocation deny-list loaded; revocations from any instance are pushed over LISTEN/NOTIFY")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// loadDenyList reads the three deny-lists into a new filter and swaps it in.
// Through database/sql, not GORM: like the heartbeat it is no request's
// statement and must not show in statement counts.
func (s *Store) loadDenyList(ctx context.Context, gen uint64) error {
	if !s.deny.begin(gen) {
		return nil
	}
	s.denyLoadHook("begun")
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return err
	}
	var triggers int
	if err := sqlDB.QueryRowContext(ctx, `SELECT count(*) FROM pg_trigger WHERE tgname = 'latchkey_revocation_notice'
  AND tgenabled <> 'D' AND tgrelid IN (to_regclass('revoked_jtis'), to_regclass('revoked_grants'), to_regclass('revoked_subjects'))`).Scan(&triggers); err != nil {
		return fmt.Errorf("load deny-list: %w", err)
	}
	if triggers != 3 {
		return errNoRevocationTriggers
	}
	now := s.nowUTC()
	jtis, err := s.loadHashes(ctx, sqlDB, "SELECT jti FROM revoked_jtis WHERE expires_at > $1", now)
	if err != nil {
		return err
	}
	grants, err := s.loadHashes(ctx, sqlDB, "SELECT request_id FROM revoked_grants WHERE expires_at > $1", now)
	if err != nil {
		return err
	}
	subjects := map[uint64]int64{}
	rows, err := sqlDB.QueryContext(ctx, "SELECT subject, revoked_at FROM revoked_subjects")
	if err != nil {
		return fmt.Errorf("load deny-list: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			subject sql.RawBytes
			at      time.Time
		)
		if err := rows.Scan(&subject, &at); err != nil {
			return fmt.Errorf("load deny-list: %w", err)
		}
		h, micros := maphash.Bytes(s.deny.seed, subject), at.UnixMicro()
		if old, ok := subjects[h]; !ok || micros > old {
			subjects[h] = micros
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load deny-list: %w", err)
	}
	s.denyLoadHook("read")
	s.deny.finish(gen, jtis, grants, subjects)
	return nil
}

// loadHashes hashes the one column query returns. RawBytes: 1M keys are
// hashed without making 1M strings.
func (s *Store) loadHashes(ctx context.Context, db *sql.DB, query string, now time.Time) ([]uint64, error) {
	rows, err := db.QueryContext(ctx, query, now)
	if err != nil {
		return nil, fmt.Errorf("load deny-list: %w", err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var key sql.RawBytes
		if err := rows.Scan(&key); err != nil {
			return nil, fmt.Errorf("load deny-list: %w", err)
		}
		out = append(out, maphash.Bytes(s.deny.seed, key))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load deny-list: %w", err)
	}
	return out, nil
}

func (s *Store) denyLoadHook(stage string) {
	if s.onDenyLoad != nil {
		s.onDenyLoad(stage)
	}
}
