package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// Issue 11 item 13: PUT /admin/clients/{id} and secret rotation racing each
// other. A PUT that read the secret hash before a rotation committed and
// wrote it back after would restore the old secret, although the admin was
// shown a new one. Afterwards exactly one secret works, it is one the admin
// was shown, and the original one is dead.
func TestConcurrentClientReplaceAndRotate(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b)
		md := map[string]any{"client_name": "service", "grant_types": []string{"client_credentials"}, "scope": "read"}
		c := h.client(md)
		cc := url.Values{"grant_type": {"client_credentials"}}
		h.token(c, cc) // the client is now in the cache

		call := func(method, path string, body any) (int, map[string]any, error) {
			var raw []byte
			if body != nil {
				raw, _ = json.Marshal(body)
			}
			req, _ := http.NewRequest(method, h.admin.URL+path, bytes.NewReader(raw))
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, nil, err
			}
			defer resp.Body.Close()
			var m map[string]any
			err = json.NewDecoder(resp.Body).Decode(&m)
			return resp.StatusCode, m, err
		}
		works := func(secret string) bool {
			resp, m := h.form("/oauth2/token", c.id, secret, cc)
			if resp.StatusCode != http.StatusOK && (resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_client") {
				t.Fatalf("token with a secret: %d %v, want 200 or 401 invalid_client", resp.StatusCode, m)
			}
			return resp.StatusCode == http.StatusOK
		}
		const rounds, each = 8, 8
		current := c.secret
		for round := range rounds {
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				errs  []error
				shown []string
			)
			for range each {
				wg.Go(func() {
					status, m, err := call(http.MethodPost, "/admin/clients/"+c.id+"/secret", nil)
					mu.Lock()
					defer mu.Unlock()
					if err != nil || status != http.StatusOK {
						errs = append(errs, fmt.Errorf("rotate: %d %v %v", status, m, err))
						return
					}
					shown = append(shown, m["client_secret"].(string))
				})
				wg.Go(func() {
					status, m, err := call(http.MethodPut, "/admin/clients/"+c.id, md)
					if err != nil || status != http.StatusOK {
						mu.Lock()
						errs = append(errs, fmt.Errorf("replace: %d %v %v", status, m, err))
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				t.Fatal(err)
			}
			// The secret of the round before was replaced by this round's
			// rotations; a PUT that wrote back what it read earlier would
			// have revived it (or an earlier secret of this round).
			if works(current) {
				t.Fatalf("round %d: the secret shown before the round still works: a PUT restored an old secret hash", round)
			}
			var working []string
			for _, s := range shown {
				if works(s) {
					working = append(working, s)
				}
			}
			if len(working) != 1 {
				t.Fatalf("round %d: %d of the %d secrets shown work, want exactly the last one", round, len(working), len(shown))
			}
			current = working[0]
		}
	})
}
