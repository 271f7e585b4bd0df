package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
)

// A jwks_uri is fetched once per TTL, refetched on request at most once a
// minute, bounded in size, never followed through a redirect, and a host
// that fails keeps its last good set.
func TestJWKSFetcher(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := json.Marshal(josev3.JSONWebKeySet{Keys: []josev3.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Use: "sig"}}})
	var hits atomic.Int32
	var mode atomic.Value
	mode.Store("ok")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch mode.Load() {
		case "ok":
			_, _ = w.Write(good)
		case "down":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "huge":
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("a", jwksMaxBytes) + `"}`))
		case "redirect":
			http.Redirect(w, r, "http://169.254.169.254/latest", http.StatusFound)
		}
	}))
	defer srv.Close()
	client := jwksHTTPClient()
	client.Transport = srv.Client().Transport
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	ctx := context.Background()

	t.Run("cache and refetch limits", func(t *testing.T) {
		f := newJWKSFetcher(client, clock)
		hits.Store(0)
		step := func(name string, refresh bool, wantHits int32) {
			t.Helper()
			set, err := f.resolve(ctx, srv.URL, refresh)
			if err != nil || len(set.Key("k1")) != 1 {
				t.Fatalf("%s: %v %v", name, set, err)
			}
			if hits.Load() != wantHits {
				t.Fatalf("%s: %d fetches, want %d", name, hits.Load(), wantHits)
			}
		}
		step("first", false, 1)
		step("cached", false, 1)
		step("refresh too soon", true, 1)
		now = now.Add(2 * time.Minute)
		step("cached after 2m", false, 1)
		step("refresh after 2m", true, 2)
		now = now.Add(6 * time.Minute)
		mode.Store("down")
		step("expired, host down: last good set", false, 3)
		mode.Store("ok")
	})

	for _, m := range []string{"down", "huge", "redirect"} {
		t.Run(m, func(t *testing.T) {
			mode.Store(m)
			defer mode.Store("ok")
			if set, err := newJWKSFetcher(client, clock).resolve(ctx, srv.URL, false); err == nil {
				t.Fatalf("got %v", set)
			}
		})
	}

	t.Run("concurrent first fetch", func(t *testing.T) {
		f := newJWKSFetcher(client, clock)
		hits.Store(0)
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := f.resolve(ctx, srv.URL, true); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if hits.Load() != 1 {
			t.Fatalf("%d fetches, want 1", hits.Load())
		}
	})
}
