package login

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDescribeDevice(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0":                                                                  "Firefox on Linux",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0 Safari/537.36 Edg/128.0":                   "Edge on Windows",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1": "Safari on iPhone",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0 Mobile Safari/537.36":                       "Chrome on Android",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15":                      "Safari on macOS",
		"curl/8.9.1":         "curl",
		"Go-http-client/1.1": "Go program",
		"":                   "Unknown device",
		"SomeBot":            "SomeBot",
	} {
		if got := describeDevice(ua); got != want {
			t.Errorf("describeDevice(%q) = %q, want %q", ua, got, want)
		}
	}
	long := strings.Repeat("é", 100)
	if got := describeDevice(long); !utf8.ValidString(got) || len(got) > 45 {
		t.Errorf("a long unknown User-Agent: %q", got)
	}
	if got := truncateUTF8(strings.Repeat("€", 100), 256); !utf8.ValidString(got) || len(got) > 256 {
		t.Errorf("truncateUTF8 split a character or overran: %d bytes", len(got))
	}
}
