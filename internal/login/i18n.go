package login

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/language"
)

// The pages speak the languages of the message catalogues: one JSON object
// per language, key to text, in locales/<tag>.json (embedded) and in the
// theme directory's locales/ (which adds keys and languages, or overrides
// texts). A text names its arguments {0}, {1}…; html/template escapes what
// T returns, and TB escapes the text and the arguments itself.

// defaultLang is what the pages speak when nothing else matches, and the
// catalogue every key must be in.
const defaultLang = "en"

// catalogues is every language's messages, and the matcher that picks one.
type catalogues struct {
	msgs    map[string]map[string]string
	tags    []language.Tag
	matcher language.Matcher
}

// loadCatalogues reads the embedded catalogues, then the theme's (nil when
// there is no theme directory) over them. A catalogue that does not parse
// is an error naming its file.
func loadCatalogues(builtin, theme fs.FS) (*catalogues, error) {
	c := &catalogues{msgs: map[string]map[string]string{}}
	for _, fsys := range []fs.FS{builtin, theme} {
		if fsys == nil {
			continue
		}
		names, err := fs.Glob(fsys, "locales/*.json")
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			tag, err := language.Parse(strings.TrimSuffix(path.Base(name), ".json"))
			if err != nil {
				return nil, fmt.Errorf("%s: the file name is not a language tag: %w", name, err)
			}
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, err
			}
			var m map[string]string
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			key := tag.String()
			if c.msgs[key] == nil {
				c.msgs[key] = map[string]string{}
			}
			for k, v := range m {
				c.msgs[key][k] = v
			}
		}
	}
	if c.msgs[defaultLang] == nil {
		return nil, fmt.Errorf("locales/%s.json: missing", defaultLang)
	}
	// The default first: the matcher falls back to the first tag.
	c.tags = []language.Tag{language.MustParse(defaultLang)}
	keys := make([]string, 0, len(c.msgs))
	for k := range c.msgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k != defaultLang {
			c.tags = append(c.tags, language.MustParse(k))
		}
	}
	c.matcher = language.NewMatcher(c.tags)
	return c, nil
}

// pick chooses the language of a page: the first of uiLocales (OpenID
// Connect ui_locales, space-separated, in order of preference) that the
// catalogues have, then the browser's Accept-Language, then English.
func (c *catalogues) pick(uiLocales string, r *http.Request) string {
	if uiLocales != "" {
		var tags []language.Tag
		for _, f := range strings.Fields(uiLocales) {
			if t, err := language.Parse(f); err == nil {
				tags = append(tags, t)
			}
		}
		if lang, ok := c.match(tags...); ok {
			return lang
		}
	}
	if r != nil {
		if tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language")); err == nil {
			if lang, ok := c.match(tags...); ok {
				return lang
			}
		}
	}
	return defaultLang
}

func (c *catalogues) match(tags ...language.Tag) (string, bool) {
	if len(tags) == 0 {
		return "", false
	}
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No {
		return "", false
	}
	return c.tags[i].String(), true
}

// text is the message key in lang, else in English, else the key itself:
// callers outside this package (the OAuth side's error pages) may pass a
// sentence that no catalogue has, and it is shown as is.
func (c *catalogues) text(lang, key string) string {
	if s, ok := c.msgs[lang][key]; ok {
		return s
	}
	if s, ok := c.msgs[defaultLang][key]; ok {
		return s
	}
	return key
}

// has reports whether any catalogue knows key in lang or English.
func (c *catalogues) has(lang, key string) bool {
	_, ok := c.msgs[lang][key]
	_, en := c.msgs[defaultLang][key]
	return ok || en
}

// localizer is one page's language.
type localizer struct {
	c    *catalogues
	lang string
}

// T is the message key with its {n} placeholders replaced by args.
func (l localizer) T(key string, args ...any) string {
	if l.c == nil {
		return key
	}
	return fill(l.c.text(l.lang, key), args, func(s string) string { return s })
}

// TA is T with the arguments in a slice (a template cannot spread one).
func (l localizer) TA(key string, args []any) string { return l.T(key, args...) }

// TB is T as HTML with each argument in <strong>: the text and the
// arguments are escaped, so a catalogue or a client name cannot inject
// markup.
func (l localizer) TB(key string, args ...any) template.HTML {
	if l.c == nil {
		return template.HTML(template.HTMLEscapeString(key))
	}
	return template.HTML(fill(template.HTMLEscapeString(l.c.text(l.lang, key)), args, func(s string) string {
		return "<strong>" + template.HTMLEscapeString(s) + "</strong>"
	}))
}

// fill replaces {0}, {1}… in s with wrap(args[i]) in one pass, so an
// argument that itself contains "{1}" is not replaced again.
func fill(s string, args []any, wrap func(string) string) string {
	if len(args) == 0 {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break
		}
		n, err := strconv.Atoi(s[i+1 : i+j])
		if err != nil || n < 0 || n >= len(args) {
			b.WriteString(s[:i+j+1])
			s = s[i+j+1:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(wrap(fmt.Sprint(args[n])))
		s = s[i+j+1:]
	}
	b.WriteString(s)
	return b.String()
}
