package oauth

import (
	"strings"
	"testing"
	"time"
)

func TestNormaliseUserCode(t *testing.T) {
	for _, tc := range []struct {
		typed, want string
		ok          bool
	}{
		{"BDWP-HQPK", "BDWPHQPK", true},
		{"bdwp-hqpk", "BDWPHQPK", true},
		{" bdwp hqpk ", "BDWPHQPK", true},
		{"BDWPHQPK", "BDWPHQPK", true},
		{"B-D-W-P-H-Q-P-K", "BDWPHQPK", true},
		{"BDWP-HQP", "", false},   // short
		{"BDWP-HQPKB", "", false}, // long
		{"BDWA-HQPK", "", false},  // a vowel is not in the alphabet
		{"BDW1-HQPK", "", false},  // nor a digit
		{"BDWP-HQPĶ", "", false},  // nor a letter that upper-cases to one
		{strings.Repeat("-", 100), "", false},
	} {
		got, ok := normaliseUserCode(tc.typed)
		if got != tc.want || ok != tc.ok {
			t.Errorf("normaliseUserCode(%q) = %q %v, want %q %v", tc.typed, got, ok, tc.want, tc.ok)
		}
	}
}

// Every letter of the alphabet is drawn, nothing else, and a code reads
// back as itself.
func TestNewUserCode(t *testing.T) {
	seen := map[rune]bool{}
	for range 500 {
		c, err := newUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := normaliseUserCode(displayUserCode(c)); !ok || n != c {
			t.Fatalf("code %q does not read back (%q %v)", c, n, ok)
		}
		for _, r := range c {
			seen[r] = true
		}
	}
	if len(seen) != len(userCodeAlphabet) {
		t.Errorf("drew %d distinct letters, want all %d", len(seen), len(userCodeAlphabet))
	}
}

func TestPollTracker(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	p := newPollTracker(2, time.Minute)
	if p.tooSoon("a", at, 5*time.Second) {
		t.Fatal("a first poll is never too soon")
	}
	if !p.tooSoon("a", at.Add(4*time.Second), 5*time.Second) {
		t.Fatal("4 s after, at a 5 s interval: too soon")
	}
	// 4.5 s is inside the forgiven tenth; measured from the last poll.
	if p.tooSoon("a", at.Add(8500*time.Millisecond), 5*time.Second) {
		t.Fatal("4.5 s after the last poll: not too soon")
	}
	// Bounded: a third code evicts those not polled within maxAge.
	p.tooSoon("b", at.Add(time.Second), 5*time.Second)
	p.tooSoon("c", at.Add(2*time.Minute), 5*time.Second)
	if len(p.last) > 2 {
		t.Fatalf("%d codes remembered, max 2", len(p.last))
	}
}
