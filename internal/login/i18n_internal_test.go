package login

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestCataloguesComplete: German and French have every English key and no
// other, and every key a built-in template or this package's code names is
// in English (a missing key would show as the key itself).
func TestCataloguesComplete(t *testing.T) {
	c, err := loadCatalogues(localeFS, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"de", "fr"} {
		for k := range c.msgs[defaultLang] {
			if _, ok := c.msgs[lang][k]; !ok {
				t.Errorf("%s.json lacks %q", lang, k)
			}
		}
		for k := range c.msgs[lang] {
			if _, ok := c.msgs[defaultLang][k]; !ok {
				t.Errorf("%s.json has %q, which en.json lacks", lang, k)
			}
		}
	}
	used := regexp.MustCompile(`"((?:login|consent|logout|device|error|layout|scope|mfa|account|reset|verify)\.[a-z_.]+)"`)
	var keys []string
	for _, dir := range []string{"templates", "."} {
		files, _ := fs.Glob(templateFS, dir+"/*.html")
		for _, f := range files {
			b, _ := fs.ReadFile(templateFS, f)
			for _, m := range used.FindAllStringSubmatch(string(b), -1) {
				keys = append(keys, m[1])
			}
		}
	}
	// The keys the Go code passes: this package's and the OAuth side's
	// error pages.
	for _, pattern := range []string{"*.go", "../oauth/*.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, _ := os.ReadFile(f)
			for _, m := range used.FindAllStringSubmatch(string(b), -1) {
				keys = append(keys, m[1])
			}
		}
	}
	if len(keys) < 20 {
		t.Fatalf("found only %d keys in the templates", len(keys))
	}
	for _, k := range slices.Compact(slices.Sorted(slices.Values(keys))) {
		if _, ok := c.msgs[defaultLang][k]; !ok {
			t.Errorf("a template names %q, which en.json lacks", k)
		}
	}
}

// TestButtonContrast: the buttons' text keeps WCAG AA contrast (4.5:1) in
// light and dark mode; the dark one was 2.6:1 (white on #7b9bff).
func TestButtonContrast(t *testing.T) {
	css, err := templateFS.ReadFile("templates/latchkey.css")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`--accent: (#[0-9a-f]{6}); --accent-fg: (#[0-9a-f]{6})`)
	ms := re.FindAllStringSubmatch(string(css), -1)
	if len(ms) != 2 {
		t.Fatalf("want a light and a dark accent, found %v", ms)
	}
	for _, m := range ms {
		if r := contrast(m[1], m[2]); r < 4.5 {
			t.Errorf("%s on %s: %.2f:1", m[2], m[1], r)
		} else {
			t.Logf("%s on %s: %.2f:1", m[2], m[1], r)
		}
	}
	if r := contrast("#7b9bff", "#ffffff"); r > 3 {
		t.Errorf("the old dark button measures %.2f:1; the check is wrong", r)
	}
	for _, colour := range []string{"#ffcc00", "#0b7a53", "#000", "#fff", "#2f5bd8", "#808080"} {
		css := string(themeCSS(colour))
		fg := regexp.MustCompile(`--accent-fg: (#[0-9a-f]{6})`).FindStringSubmatch(css)[1]
		if r := contrast(colour, fg); r < 3.9 {
			t.Errorf("theme %s: %s text at %.2f:1", colour, fg, r)
		}
	}
}

// TestOriginForCSP: only a plain scheme://host[:port] goes into img-src;
// a host with CSP syntax in it (url.Parse allows ';' there) adds nothing.
func TestOriginForCSP(t *testing.T) {
	for raw, want := range map[string]string{
		"https://cdn.example/logo.png":         "https://cdn.example",
		"http://127.0.0.1:3000/l.png":          "http://127.0.0.1:3000",
		"https://[::1]:8443/l.png":             "https://[::1]:8443",
		"/static/logo.svg":                     "",
		"https://x.example;script-src:*/l.png": "",
		"https://x.example,y/l.png":            "",
		"javascript:alert(1)":                  "",
		"data:image/png;base64,AAAA":           "",
	} {
		if got := origin(raw); got != want {
			t.Errorf("origin(%q) = %q, want %q", raw, got, want)
		}
	}
}
