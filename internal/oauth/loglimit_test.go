package oauth

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLogLimiter(func() time.Time { return now }, time.Minute, 3)
	steps := []struct {
		name       string
		advance    time.Duration
		want       bool
		suppressed int
	}{
		{"first", 0, true, 0},
		{"second", time.Second, true, 0},
		{"third, the burst", time.Second, true, 0},
		{"over the burst", time.Second, false, 0},
		{"still over", 10 * time.Second, false, 0},
		{"next window reports what was held back", time.Minute, true, 2},
		{"then counts afresh", time.Second, true, 0},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		ok, suppressed := l.allow()
		if ok != s.want || suppressed != s.suppressed {
			t.Errorf("%s: allow() = %v, %d; want %v, %d", s.name, ok, suppressed, s.want, s.suppressed)
		}
	}
}
