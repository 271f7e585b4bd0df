package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/login"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/store"
	"github.com/latchkey/latchkey/internal/store/storetest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/oauth2"
)

// scrape reads the admin listener's /metrics as Prometheus does.
func (h *harness) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.admin.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample is the value of name's series whose labels include want (label
// pairs), or -1 when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// What an operator watches is on /metrics once it has happened: sign-ins
// by result (password grant and login page alike), the lockout a third
// wrong password begins, second-factor checks by kind and result, active
// login sessions, the signing key's age and next rotation, janitor passes
// and rows deleted by table, the connection pool, and the build.
func TestMetricsAfterTheFact(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newHarnessWith(t, b, store.Options{}, []server.Option{
			server.WithLogin(func(c *login.Config) { c.Throttle.DelayStep = 0 }),
		}, func(c *config.Config) { c.LoginUserLimit, c.AuthCodeTTL = 3, 10*time.Minute })
		h.user("noa", "noa-password-1")
		h.user("mia", "mia-password-1")
		h.person("ida", "ida-password-1")
		pw := passwordClient(h, true)
		grant := func(user, pass string) int {
			resp, _ := h.form("/oauth2/token", pw.id, pw.secret, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}})
			return resp.StatusCode
		}
		grant("ghost", "whatever")
		grant("noa", "noa-password-1")
		for i := range 3 {
			grant("mia", fmt.Sprintf("wrong-%d", i))
		}
		if code := grant("mia", "mia-password-1"); code != http.StatusBadRequest {
			t.Fatalf("locked-out user: %d", code)
		}

		// Login page: ida signs in (no factor yet), enrols an app, then
		// signs in again: password, a wrong code, the right one.
		app := h.spa("https://app.example/cb", true, "openid")
		first := h.browser("https://")
		signIn(t, first, "ida", "ida-password-1")
		secret, _ := enrolTOTP(t, h, first)
		br, page := passwordThenCode(t, h, app, oauth2.GenerateVerifier())
		right := totpAt(t, secret, h.now())
		wrong := "000000"
		if right == wrong {
			wrong = "111111"
		}
		if resp, _ := br.secondFactor(page, wrong); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code: %d", resp.StatusCode)
		}
		br.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		if resp, _ := br.secondFactor(page, right); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("right code: %d", resp.StatusCode)
		}

		// An expired login session for the janitor to delete.
		past := h.now().Add(-48 * time.Hour)
		if err := h.store.CreateLoginSession(context.Background(), "expired-cookie", &store.LoginSession{
			UserID: "user-noa", AuthTime: past, LastSeenAt: past, ExpiresAt: past.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, held, err := h.srv.Janitor().Pass(context.Background()); err != nil || !held {
			t.Fatalf("janitor pass: held %v, %v", held, err)
		}

		fams := h.scrape(t)
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"latchkey_sign_ins_total", []string{"result", "unknown_user"}, 1},
			{"latchkey_sign_ins_total", []string{"result", "bad_password"}, 3},
			{"latchkey_sign_ins_total", []string{"result", "locked"}, 1},
			// noa's grant, ida's first sign-in and her second password.
			{"latchkey_sign_ins_total", []string{"result", "success"}, 3},
			{"latchkey_sign_ins_total", []string{"result", "mfa_required"}, 1},
			{"latchkey_lockouts_total", []string{"throttle", "password", "counter", "user"}, 1},
			{"latchkey_lockouts_total", []string{"throttle", "mfa", "counter", "user"}, 0},
			{"latchkey_mfa_verifications_total", []string{"kind", "totp", "result", "failure"}, 1},
			{"latchkey_mfa_verifications_total", []string{"kind", "totp", "result", "success"}, 1},
			// ida's two browsers.
			{"latchkey_active_login_sessions", nil, 2},
			{"latchkey_janitor_passes_total", []string{"result", "ok"}, 1},
			{"latchkey_janitor_deleted_rows_total", []string{"table", "login_sessions"}, 1},
			{"latchkey_backchannel_logout_deliveries_total", []string{"outcome", "delivered"}, 0},
			{"go_sql_max_open_connections", []string{"db_name", h.store.Dialect()}, map[string]float64{"sqlite": 1, "postgres": 20}[h.store.Dialect()]},
			{"latchkey_build_info", []string{"version", "dev", "commit", "unknown", "goversion", runtime.Version()}, 1},
		} {
			if got := sample(fams, c.name, c.labels...); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		now := float64(h.now().Unix())
		if age := sample(fams, "latchkey_signing_key_age_seconds"); age < 0 || age > 60 {
			t.Errorf("signing key age %v s, want a fresh key", age)
		}
		next := sample(fams, "latchkey_signing_key_next_rotation_timestamp_seconds")
		if want := now + h.cfg.KeyRotationPeriod.Seconds(); next < want-120 || next > want+120 {
			t.Errorf("next rotation at %v, want about %v (now plus the rotation period)", next, want)
		}
		if last := sample(fams, "latchkey_janitor_last_success_timestamp_seconds"); last < now-60 || last > now+60 {
			t.Errorf("janitor's last good pass at %v, want about %v", last, now)
		}
	})
}
