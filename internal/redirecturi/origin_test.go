package redirecturi_test

import (
	"testing"

	"github.com/latchkey/latchkey/internal/redirecturi"
)

func TestParseOrigin(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"https://app.example.com", "https://app.example.com"},
		{"https://App.Example.COM/", "https://app.example.com"},
		{"HTTPS://app.example.com:443", "https://app.example.com"},
		{"http://localhost:5173", "http://localhost:5173"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"https://app.example.com:8443", "https://app.example.com:8443"},
		{"https://app.example.com/spa", ""},
		{"https://app.example.com/?a=1", ""},
		{"https://app.example.com?", ""},
		{"https://app.example.com#x", ""},
		{"https://*.example.com", ""},
		{"https://user@app.example.com", ""},
		{"https://app.example.com:0", ""},
		{"https://app.example.com:080", ""},
		{"https://app.example.com:", ""},
		{"com.example.app://cb", ""},
		{"null", ""},
		{"", ""},
		{"app.example.com", ""},
	} {
		got, err := redirecturi.ParseOrigin(tc.raw)
		if tc.want == "" && err == nil {
			t.Errorf("ParseOrigin(%q) = %q, want an error", tc.raw, got)
		}
		if tc.want != "" && (err != nil || got != tc.want) {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
}

func TestOriginOf(t *testing.T) {
	for raw, want := range map[string]string{
		"https://app.example.com/callback?x=1": "https://app.example.com",
		"https://app.example.com:443/cb":       "https://app.example.com",
		"http://localhost:5173/":               "http://localhost:5173",
		"http://127.0.0.1/cb":                  "http://127.0.0.1",
		"com.example.app:/oauth2redirect":      "",
		"not a url":                            "",
	} {
		if got := redirecturi.OriginOf(raw); got != want {
			t.Errorf("OriginOf(%q) = %q, want %q", raw, got, want)
		}
	}
}
