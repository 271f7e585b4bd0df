package login

import (
	"regexp"
	"strings"
	"testing"
)

// palettes reads the custom properties of css: the first :root block is
// the light palette, the one inside prefers-color-scheme: dark the dark
// one, each over the light one.
func palettes(t *testing.T, css string) (light, dark map[string]string) {
	t.Helper()
	root := regexp.MustCompile(`:root \{([^}]*)\}`)
	prop := regexp.MustCompile(`--([a-z-]+): (#[0-9a-f]{3,6});`)
	blocks := root.FindAllStringSubmatch(css, -1)
	if len(blocks) != 2 || !strings.Contains(css, "@media (prefers-color-scheme: dark) { :root") {
		t.Fatalf("want a light and a dark :root block, found %d", len(blocks))
	}
	light, dark = map[string]string{}, map[string]string{}
	for _, m := range prop.FindAllStringSubmatch(blocks[0][1], -1) {
		light[m[1]], dark[m[1]] = m[2], m[2]
	}
	for _, m := range prop.FindAllStringSubmatch(blocks[1][1], -1) {
		dark[m[1]] = m[2]
	}
	return light, dark
}

// TestPaletteContrast: in light and in dark mode, every text colour keeps
// 4.5:1 on the card (WCAG 1.4.3), and the borders of fields and secondary
// buttons and the focus ring (the link colour) keep 3:1 (WCAG 1.4.11),
// which axe-core does not measure. The cards here are the ones themeCSS
// assumes.
func TestPaletteContrast(t *testing.T) {
	css, err := templateFS.ReadFile("templates/latchkey.css")
	if err != nil {
		t.Fatal(err)
	}
	light, dark := palettes(t, string(css))
	for name, p := range map[string]map[string]string{"light": light, "dark": dark} {
		want := map[string]string{"light": lightCard, "dark": darkCard}[name]
		if rgb(p["card"]) != rgb(want) {
			t.Errorf("%s card is %s; themeCSS assumes %s", name, p["card"], want)
		}
		for _, c := range []struct {
			fg, bg string
			min    float64
		}{
			{"fg", "card", 4.5}, {"muted", "card", 4.5}, {"error", "card", 4.5}, {"link", "card", 4.5},
			{"accent-fg", "accent", 4.5}, {"field-border", "card", 3}, {"field-border", "bg", 3},
		} {
			if p[c.fg] == "" || p[c.bg] == "" {
				t.Errorf("%s palette lacks --%s or --%s", name, c.fg, c.bg)
				continue
			}
			if r := contrast(p[c.fg], p[c.bg]); r < c.min {
				t.Errorf("%s: --%s %s on --%s %s is %.2f:1, want %.1f:1", name, c.fg, p[c.fg], c.bg, p[c.bg], r, c.min)
			}
		}
	}
}

// TestThemeLinkContrast: a theme's primary colour, however light or dark,
// gives links and the focus ring 4.5:1 on both cards, and its buttons'
// text 4.5:1 where the colour allows it.
func TestThemeLinkContrast(t *testing.T) {
	for _, colour := range []string{"#ffcc00", "#0b7a53", "#000", "#fff", "#2f5bd8", "#808080", "#1a202b", "#f4f6fa", "#ff0000"} {
		light, dark := palettes(t, string(themeCSS(colour)))
		if light["accent"] != colour || dark["accent"] != colour {
			t.Errorf("theme %s: the buttons are %s and %s, not the brand colour", colour, light["accent"], dark["accent"])
		}
		for name, c := range map[string][2]string{"light": {light["link"], lightCard}, "dark": {dark["link"], darkCard}} {
			if r := contrast(c[0], c[1]); r < 4.5 {
				t.Errorf("theme %s, %s: links %s at %.2f:1", colour, name, c[0], r)
			}
		}
	}
	// A colour that already reads well is left as it is.
	if light, _ := palettes(t, string(themeCSS("#2f5bd8"))); light["link"] != "#2f5bd8" {
		t.Errorf("#2f5bd8 became %s on the light card", light["link"])
	}
}
