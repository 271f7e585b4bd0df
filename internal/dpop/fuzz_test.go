package dpop_test

import (
	"context"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/dpop"
)

// FuzzCheck: whatever a client sends as a proof, the answer is a refused
// proof (the client's error), never a panic or a server failure.
func FuzzCheck(f *testing.F) {
	s, _ := ecSigner(f)
	good, _ := s.Proof("POST", tokenURL, "", "", now)
	for _, seed := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", good + "x", good[:len(good)/2]} {
		f.Add(seed)
	}
	v := dpop.New(&memReplay{}, []byte("0123456789abcdef0123456789abcdef"), true, func() time.Time { return now })
	f.Fuzz(func(t *testing.T, proof string) {
		jkt, err := v.Check(context.Background(), proof, dpop.Request{Method: "POST", URL: tokenURL, AccessToken: "t"})
		if err == nil {
			t.Fatalf("fuzzed proof accepted: %q -> %s", proof, jkt)
		}
		if _, ok := dpop.AsError(err); !ok {
			t.Fatalf("fuzzed proof: %v is not a refused proof", err)
		}
	})
}
