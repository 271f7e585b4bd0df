package oauth

import (
	"net/url"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// The example of OpenID Connect Core 1.0 Appendix A.3 (RS256), and the
// hash each algorithm must use.
func TestAtHash(t *testing.T) {
	if got := atHash(jose.RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"); got != "77QmUPtjPfzWtF2AnpK9RQ" {
		t.Errorf("RS256 at_hash = %s, want 77QmUPtjPfzWtF2AnpK9RQ (Core A.3)", got)
	}
	if atHash(jose.ES256, "x") != atHash(jose.RS256, "x") {
		t.Error("ES256 and RS256 both hash with SHA-256")
	}
	// SHA-512, left half: 32 bytes, 43 base64url characters.
	if got := atHash(jose.EdDSA, "x"); len(got) != 43 {
		t.Errorf("EdDSA at_hash %q is not half of SHA-512", got)
	}
}

func TestDropUnservedScopes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   url.Values
		want []string // nil: no scope parameter
	}{
		{"none", url.Values{}, nil},
		{"untouched", url.Values{"scope": {"openid profile"}}, []string{"openid profile"}},
		{"dropped, order kept", url.Values{"scope": {"address openid phone email"}}, []string{"openid email"}},
		{"only unserved", url.Values{"scope": {"phone address"}}, nil},
		{"not a prefix match", url.Values{"scope": {"addresses phone_number"}}, []string{"addresses phone_number"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dropUnservedScopes(tc.in)
			got, ok := tc.in["scope"]
			if (tc.want == nil) != !ok || (ok && (len(got) != 1 || got[0] != tc.want[0])) {
				t.Errorf("scope = %q (present %v), want %q", got, ok, tc.want)
			}
		})
	}
}
