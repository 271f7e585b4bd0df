package login

import (
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Theme is how an operator dresses the pages (LATCHKEY_THEME_DIR and the
// simple settings beside it). The zero value is Latchkey's own look.
type Theme struct {
	// Dir holds templates/, static/ and locales/ that override or extend
	// the built-in files of the same names; empty for none.
	Dir string
	// ProductName replaces "Latchkey" on every page.
	ProductName string
	// LogoURL is shown above every page: https, http to a loopback host,
	// or a path under /static/ (a file of Dir/static).
	LogoURL string
	// PrimaryColor is "#rgb" or "#rrggbb", the buttons' and links' colour.
	PrimaryColor string
}

// DefaultProductName is what the pages call the server without a theme.
const DefaultProductName = "Latchkey"

// pageNames are the templates the handler renders, each drawn inside
// layout.html's "layout" and defining "body". A theme overrides any of
// them by file name; the other helpers' pages join this list.
var pageNames = slices.Concat([]string{"login", "consent", "logout", "message", "device"}, mfaPages, accountPages)

var hexColor = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// Validate checks the simple settings; every problem is reported.
func (t Theme) Validate() error {
	var errs []error
	if t.PrimaryColor != "" && !hexColor.MatchString(t.PrimaryColor) {
		errs = append(errs, fmt.Errorf("primary colour %q must be a hex colour like #2f5bd8", t.PrimaryColor))
	}
	if t.LogoURL != "" {
		if err := checkImageURL(t.LogoURL, true); err != nil {
			errs = append(errs, fmt.Errorf("logo URL: %w", err))
		}
	}
	if strings.ContainsAny(t.ProductName, "\r\n") || len(t.ProductName) > 100 {
		errs = append(errs, errors.New("product name must be one line of at most 100 bytes"))
	}
	return errors.Join(errs...)
}

// checkImageURL accepts an https URL or http to a loopback host (for
// development), and when local is true a path under /static/.
func checkImageURL(raw string, local bool) error {
	if local && strings.HasPrefix(raw, "/static/") && !strings.Contains(raw, "..") {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Host == "" || u.User != nil {
		return fmt.Errorf("%q must be an absolute URL with a host and no user information", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("%q must use https (http only for loopback addresses)", raw)
}

// isLoopbackHost reports whether host is localhost or a loopback IP.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := strings.Trim(host, "[]")
	return strings.HasPrefix(ip, "127.") || ip == "::1"
}

// cspHost is a host[:port] that can go into a CSP source expression as
// is: url.Parse lets sub-delimiters such as ';' through in a host, which
// would end the img-src directive and start another.
var cspHost = regexp.MustCompile(`^([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// origin is the scheme://host of an https (or loopback http) URL, for the
// CSP's img-src, or "" for a path of ours (covered by 'self') or anything
// that is not a plain host.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || !cspHost.MatchString(u.Host) {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// themeFS is the theme directory, or nil.
func (t Theme) themeFS() fs.FS {
	if t.Dir == "" {
		return nil
	}
	return os.DirFS(t.Dir)
}

// loadTemplates parses every page from layout.html and its own file, each
// taken from the theme's templates/ when it has one. It fails, naming the
// file, on a theme directory that cannot be read, a template that does not
// parse, a file no page uses (a misspelt name would otherwise be ignored
// silently) or a page that lacks "layout" or "body" once its files are
// combined.
func loadTemplates(builtin, theme fs.FS, funcs template.FuncMap) (map[string]*template.Template, error) {
	known := append([]string{"layout"}, pageNames...)
	if theme != nil {
		if st, err := fs.Stat(theme, "."); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("theme directory: %w", errOr(err, errors.New("not a directory")))
		}
		names, err := fs.Glob(theme, "templates/*.html")
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !slices.Contains(known, strings.TrimSuffix(path.Base(n), ".html")) {
				return nil, fmt.Errorf("theme %s: not a page Latchkey renders (%s)", n, strings.Join(known, ", "))
			}
		}
	}
	source := func(name string) (fs.FS, string) {
		file := "templates/" + name + ".html"
		if theme != nil {
			if _, err := fs.Stat(theme, file); err == nil {
				return theme, file
			}
		}
		return builtin, file
	}
	out := map[string]*template.Template{}
	for _, page := range pageNames {
		t := template.New(page).Funcs(funcs)
		for _, name := range []string{"layout", page} {
			fsys, file := source(name)
			b, err := fs.ReadFile(fsys, file)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", describe(fsys, theme, file), err)
			}
			if _, err := t.New(file).Parse(string(b)); err != nil {
				return nil, fmt.Errorf("%s: %w", describe(fsys, theme, file), err)
			}
			want := map[string]string{"layout": "layout", page: "body"}[name]
			if t.Lookup(want) == nil {
				return nil, fmt.Errorf("%s: defines no {{define %q}}", describe(fsys, theme, file), want)
			}
		}
		out[page] = t
	}
	return out, nil
}

func describe(fsys, theme fs.FS, file string) string {
	if theme != nil && fsys == theme {
		return "theme " + file
	}
	return file
}

func errOr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// The cards of latchkey.css in light and dark mode: what links and the
// focus ring are drawn on.
const lightCard, darkCard = "#ffffff", "#1a202b"

// themeCSS is /static/theme.css: the primary colour as the pages' custom
// properties, and a text colour on it that keeps WCAG AA contrast (4.5:1).
// Links and the focus ring take the colour too, darkened on the light card
// and lightened on the dark one until they keep 4.5:1 there (a yellow
// brand colour is no link colour on white, nor a navy one on the dark
// card). A stylesheet, not an inline style: the CSP stays style-src 'self'.
func themeCSS(color string) []byte {
	if color == "" {
		return nil
	}
	fg := "#ffffff"
	if contrast(color, "#ffffff") < contrast(color, "#11151c") {
		fg = "#11151c"
	}
	return fmt.Appendf(nil, ":root { --accent: %[1]s; --accent-fg: %[2]s; --link: %[3]s; }\n"+
		"@media (prefers-color-scheme: dark) { :root { --accent: %[1]s; --accent-fg: %[2]s; --link: %[4]s; } }\n",
		color, fg, readableOn(color, lightCard, "#000000"), readableOn(color, darkCard, "#ffffff"))
}

// readableOn is color mixed toward toward (black or white) just enough to
// keep 4.5:1 against card.
func readableOn(color, card, toward string) string {
	for i := 0; i <= 20; i++ {
		if c := mix(color, toward, float64(i)/20); contrast(c, card) >= 4.5 {
			return c
		}
	}
	return toward
}

// mix is the colour a fraction t of the way from a to b, as #rrggbb.
func mix(a, b string, t float64) string {
	ca, cb := rgb(a), rgb(b)
	out := "#"
	for i := range ca {
		out += fmt.Sprintf("%02x", int(math.Round(float64(ca[i])*(1-t)+float64(cb[i])*t)))
	}
	return out
}

// rgb is the channels of "#rgb" or "#rrggbb".
func rgb(hex string) [3]uint64 {
	h := strings.TrimPrefix(hex, "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	var c [3]uint64
	for i := range c {
		c[i], _ = strconv.ParseUint(h[2*i:2*i+2], 16, 8)
	}
	return c
}

// contrast is the WCAG 2.2 contrast ratio of two hex colours.
func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// luminance is WCAG's relative luminance of "#rgb" or "#rrggbb".
func luminance(hex string) float64 {
	ch := rgb(hex)
	var l float64
	for i, w := range []float64{0.2126, 0.7152, 0.0722} {
		c := float64(ch[i]) / 255
		if c <= 0.04045 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += w * c
	}
	return l
}

// staticFiles serves /static/: the built-in stylesheet, theme.css, and the
// theme's static/ files (which may replace latchkey.css). Only regular
// files are served; there are no directory listings.
type staticFiles struct {
	css, themeCSS []byte
	theme         fs.FS
	notFound      http.HandlerFunc
}

func (s *staticFiles) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("path")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// A theme's SVG opened on its own is a document of our origin: it may
	// show, not run anything.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'self' 'unsafe-inline'; sandbox")
	if s.theme != nil && fs.ValidPath("static/"+name) {
		if st, err := fs.Stat(s.theme, "static/"+name); err == nil && st.Mode().IsRegular() {
			http.ServeFileFS(w, r, s.theme, "static/"+name)
			return
		}
	}
	switch name {
	case "latchkey.css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = w.Write(s.css)
	case "theme.css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = w.Write(s.themeCSS)
	default:
		w.Header().Del("Cache-Control")
		s.notFound(w, r)
	}
}
