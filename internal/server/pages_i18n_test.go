package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
	"golang.org/x/oauth2"
)

// acceptLanguage sends every request of a browser with the header a
// German-speaking person's browser sends.
type acceptLanguage struct {
	lang string
	next http.RoundTripper
}

func (a acceptLanguage) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept-Language", a.lang)
	return a.next.RoundTrip(r)
}

// speaking makes br ask for lang on every request.
func speaking(br *browser, lang string) *browser {
	br.client.Transport = acceptLanguage{lang: lang, next: http.DefaultTransport}
	return br
}

// wantGerman checks that a page is German throughout: its language, the
// texts given, and none of the English ones.
func wantGerman(t *testing.T, what string, resp *http.Response, page string, de, en []string) {
	t.Helper()
	if !strings.Contains(page, `<html lang="de">`) || resp.Header.Get("Content-Language") != "de" {
		t.Errorf("%s: not German (Content-Language %q)", what, resp.Header.Get("Content-Language"))
	}
	for _, s := range de {
		if !strings.Contains(page, s) {
			t.Errorf("%s lacks %q", what, s)
		}
	}
	for _, s := range en {
		if strings.Contains(page, s) {
			t.Errorf("%s still says %q", what, s)
		}
	}
}

// The account pages and the second-factor pages follow the browser's
// Accept-Language like the login page: a German browser gets them, their
// errors and their notices in German.
func TestAccountAndSecondFactorLanguage(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		h := newAccountHarness(t, b, true)
		h.person("ida", "ida-password-1")
		app := h.spa("https://app.example/cb", true, "openid")
		br := speaking(h.browser("https://"), "de-DE,de;q=0.9,en;q=0.5")
		signIn(t, br, "ida", "ida-password-1")

		resp, page := br.get(h.public.URL + "/account")
		wantGerman(t, "account page", resp, page,
			[]string{"Ihr Konto · Latchkey", "Aktive Sitzungen", "Passwort ändern", "Neues Passwort wiederholen", "dieses Gerät", "(bestätigt)", "Abmelden"},
			[]string{"Active sessions", "Change password", "this device", "Sign out"})
		resp, page = br.post("/account/password", url.Values{"csrf_token": {field(t, csrfRe, page)},
			"current_password": {"ida-password-1"}, "new_password": {"ida-password-2"}, "confirm_password": {"ida-password-3"}})
		wantGerman(t, "account page with an error", resp, page, []string{"Die neuen Passwörter stimmen nicht überein."}, []string{"do not match"})
		resp, page = br.post("/account/password", url.Values{"csrf_token": {"forged"}})
		wantGerman(t, "expired account form", resp, page, []string{"Ihr Formular ist abgelaufen", `href="/account">Ihr Konto</a>`}, []string{"Your form expired"})

		resp, page = br.get(h.public.URL + "/account/totp")
		wantGerman(t, "enrolment page", resp, page,
			[]string{"Authenticator-App einrichten", "Scannen Sie diesen Code", "Zwei-Schritt-Verifizierung einschalten"},
			[]string{"Scan this code", "Turn on"})
		enrolTOTP(t, h.harness, br)

		// Another sign-in into the application asks for the code, in German.
		other := speaking(h.browser("https://app.example"), "de")
		_, page = other.get(app.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		resp, page = other.login(page, "ida", "ida-password-1")
		if !isSecondFactorPage(resp, page) {
			t.Fatalf("after the password: %d, want the second-factor page\n%s", resp.StatusCode, page)
		}
		wantGerman(t, "second-factor page", resp, page,
			[]string{"Zwei-Schritt-Verifizierung · Latchkey", "Code aus Ihrer Authenticator-App", "Bestätigen</button>"},
			[]string{"Code from your", "Verify</button>"})
		resp, page = other.secondFactor(page, "000000")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code: %d", resp.StatusCode)
		}
		wantGerman(t, "second-factor page with a wrong code", resp, page, []string{"Dieser Code ist ungültig."}, []string{"not valid"})

		resp, page = speaking(h.browser("https://"), "de").get(h.public.URL + "/forgot-password")
		wantGerman(t, "forgot-password page", resp, page, []string{"Passwort vergessen · Latchkey", "Link senden", "Zurück zur Anmeldung"}, []string{"Send link"})
	})
}
