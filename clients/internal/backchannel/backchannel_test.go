package backchannel

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Requests under the issuer reach the internal URL with their path and
// query; anything else, including a host that merely starts like the
// issuer's path, is sent where it was addressed.
func TestRewritesOnlyTheIssuer(t *testing.T) {
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "internal "+r.URL.RequestURI())
	}))
	defer internal.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "other "+r.URL.RequestURI())
	}))
	defer other.Close()

	c, err := Client(nil, "https://auth.example.invalid/tenant/", internal.URL+"/lk")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, want string }{
		{"https://auth.example.invalid/tenant/.well-known/jwks.json", "internal /lk/.well-known/jwks.json"},
		{"https://auth.example.invalid/tenant/oauth2/token?x=1", "internal /lk/oauth2/token?x=1"},
		{"https://auth.example.invalid/tenant", "internal /lk"},
		{other.URL + "/tenant/oauth2/token", "other /tenant/oauth2/token"},
	} {
		resp, err := c.Get(tc.url)
		if err != nil {
			t.Errorf("GET %s: %v", tc.url, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Errorf("GET %s reached %q, want %q", tc.url, body, tc.want)
		}
	}
	// Not under the issuer's path: not rewritten, so it fails to resolve.
	for _, u := range []string{"https://auth.example.invalid/tenantX/oauth2/token", "http://auth.example.invalid/tenant/oauth2/token"} {
		if resp, err := c.Get(u); err == nil {
			resp.Body.Close()
			t.Errorf("GET %s was rewritten onto the internal URL", u)
		}
	}
}

func TestClientArguments(t *testing.T) {
	base := &http.Client{}
	if c, err := Client(base, "http://localhost:8080", ""); err != nil || c != base {
		t.Errorf("no internal URL: %v, %v; want the base client as it is", c, err)
	}
	for _, bad := range []struct{ issuer, internal string }{
		{"http://localhost:8080", "latchkey:8080"},
		{"http://localhost:8080", "ftp://latchkey"},
		{"http://localhost:8080", "http://latchkey:8080/?a=b"},
		{"/relative", "http://latchkey:8080"},
	} {
		if _, err := Client(nil, bad.issuer, bad.internal); err == nil {
			t.Errorf("Client(%q, %q) accepted", bad.issuer, bad.internal)
		}
	}
}
