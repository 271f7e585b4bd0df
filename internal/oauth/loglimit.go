package oauth

import (
	"sync"
	"time"
)

// logLimiter lets at most burst lines through per interval and counts the
// ones it holds back, so that an attacker who replays tokens cannot flood
// the log (issue 11 item 5). It is per process: each instance logs at most
// burst lines per interval.
type logLimiter struct {
	now      func() time.Time
	interval time.Duration
	burst    int

	mu         sync.Mutex
	start      time.Time
	used       int
	suppressed int
}

func newLogLimiter(now func() time.Time, interval time.Duration, burst int) *logLimiter {
	return &logLimiter{now: now, interval: interval, burst: burst}
}

// allow reports whether a line may be written now and, when it may, how
// many lines were held back since the last one that was written.
func (l *logLimiter) allow() (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.now(); now.Sub(l.start) >= l.interval {
		l.start, l.used = now, 0
	}
	if l.used >= l.burst {
		l.suppressed++
		return false, 0
	}
	l.used++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
