package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	"gopkg.in/yaml.v3"
)

// metricRe finds the metric names a PromQL expression reads.
var metricRe = regexp.MustCompile(`\b(?:latchkey|go_sql)_[a-z_]+\b`)

// alertRules is the part of Prometheus's rule file format the check reads.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// The shipped alert rules are well-formed rule files with the alerts
// operators need, and every metric they and the Grafana dashboard read is
// one Latchkey exposes on /metrics: a renamed metric breaks this test, not
// a dashboard in production. (A structural check: pulling in Prometheus's
// own rulefmt would bring its whole module into go.mod.)
func TestDeployFilesNameRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	used := map[string]string{}
	var alerts []string
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a name and rules are required", g.Name)
		}
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if _, err := time.ParseDuration(r.For); r.For != "" && err != nil {
				t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
			}
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: a summary and a description are required", r.Alert)
			}
			checkExpr(t, r.Alert, r.Expr, used)
		}
	}
	for _, want := range []string{"LatchkeyRefreshTokenReuseSpike", "LatchkeyHigh5xxRate", "LatchkeyKeyRotationOverdue",
		"LatchkeyLockoutStorm", "LatchkeyJanitorNotRunning", "LatchkeyDBPoolSaturated", "LatchkeyBackchannelDeliveryFailures"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yml has no %s", want)
		}
	}

	raw, err = os.ReadFile("../../deploy/grafana/latchkey.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("latchkey.json: %v", err)
	}
	panels := 0
	walkExprs(dash, func(where, expr string) {
		panels++
		checkExpr(t, where, expr, used)
	})
	if panels < 10 {
		t.Errorf("the dashboard has %d queries; it lost its panels?", panels)
	}

	// A server that has served a token and an OAuth error, and whose
	// janitor deleted a row, has every family on /metrics.
	h := newHarness(t, storetest.Backends()[0])
	c := h.serviceClient("read")
	h.token(c, url.Values{"grant_type": {"client_credentials"}})
	h.form("/oauth2/token", c.id, "wrong", url.Values{"grant_type": {"client_credentials"}})
	past := h.now().Add(-48 * time.Hour)
	if err := h.store.CreateLoginSession(context.Background(), "expired", &store.LoginSession{
		UserID: h.user("gone", "gone-password-1"), AuthTime: past, LastSeenAt: past, ExpiresAt: past.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.srv.Janitor().Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	fams := h.scrape(t)
	for name, where := range used {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if fams[base] == nil && strings.HasSuffix(base, suffix) {
				base = strings.TrimSuffix(base, suffix)
			}
		}
		if fams[base] == nil {
			t.Errorf("%s reads %s, which /metrics does not have", where, name)
		}
	}
	if resp, _ := h.do(mustRequest(t, http.MethodGet, h.admin.URL+"/metrics")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the admin token: %d, want 401", resp.StatusCode)
	}
}

// checkExpr records the metrics expr reads and checks that its brackets
// balance (what a malformed edit breaks first).
func checkExpr(t *testing.T, where, expr string, used map[string]string) {
	t.Helper()
	if strings.TrimSpace(expr) == "" {
		t.Errorf("%s: empty expression", where)
		return
	}
	depth := map[rune]int{}
	for _, r := range expr {
		switch r {
		case '(', '{', '[':
			depth[r]++
		case ')':
			depth['(']--
		case '}':
			depth['{']--
		case ']':
			depth['[']--
		}
	}
	for open, d := range depth {
		if d != 0 {
			t.Errorf("%s: unbalanced %q in %s", where, open, expr)
		}
	}
	names := metricRe.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: reads no Latchkey metric: %s", where, expr)
	}
	for _, n := range names {
		used[n] = where
	}
}

// walkExprs calls fn with every "expr" of a Grafana dashboard and the title
// of the panel it is in.
func walkExprs(v any, fn func(where, expr string)) {
	switch v := v.(type) {
	case map[string]any:
		if targets, ok := v["targets"].([]any); ok {
			title, _ := v["title"].(string)
			for _, tg := range targets {
				if m, ok := tg.(map[string]any); ok {
					if e, ok := m["expr"].(string); ok {
						fn("dashboard panel "+title, e)
					}
				}
			}
		}
		for k, x := range v {
			if k != "targets" {
				walkExprs(x, fn)
			}
		}
	case []any:
		for _, x := range v {
			walkExprs(x, fn)
		}
	}
}
