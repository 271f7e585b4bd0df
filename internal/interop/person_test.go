package interop_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/lktest"
	"github.com/latchkey/latchkey/internal/secrets"
	"github.com/latchkey/latchkey/internal/store"
)

// user is the person every test signs in as, with a profile, so that the
// profile and email claims have something to say.
var user = store.User{ID: "user-ada", Username: "ada", Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace",
	Email: "ada@example.com", EmailVerified: true, Groups: []string{"engineers"}}

const password = "ada-password-1"

func addUser(t *testing.T, lk *lktest.Server) {
	t.Helper()
	u := user
	u.PasswordHash, _ = secrets.HashPassword(password, secrets.Argon2Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err := lk.Store.CreateUser(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
}

// person is a browser without JavaScript: an HTTP client with a cookie jar
// that follows redirects and fills in Latchkey's login, consent and
// sign-out forms (the fields the contract names) as a person would.
type person struct {
	t      *testing.T
	client *http.Client
	// stopAt: a redirect to a URL with this prefix is not followed; visit
	// returns it (a redirect URI nothing listens on).
	stopAt   string
	pages    []string // the Latchkey pages shown, in order ("login", "consent", "logout")
	username string
	// deny answers the consent page with Deny instead of Allow.
	deny bool
}

func newPerson(t *testing.T, stopAt string) *person {
	jar, _ := cookiejar.New(nil)
	p := &person{t: t, stopAt: stopAt, username: user.Username}
	p.client = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if p.stopAt != "" && strings.HasPrefix(req.URL.String(), p.stopAt) {
			return http.ErrUseLastResponse
		}
		if len(via) > 20 {
			return fmt.Errorf("more than 20 redirects")
		}
		return nil
	}}
	return p
}

var (
	formRe   = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)">(.*?)</form>`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// visit opens u and goes on through Latchkey's pages until a redirect to
// stopAt (returned as the URL) or a page that is not Latchkey's (returned
// with its body).
func (p *person) visit(u string) (*url.URL, string) {
	p.t.Helper()
	resp, err := p.client.Get(u)
	for range 10 {
		if err != nil {
			p.t.Fatalf("visit %s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
			next, _ := resp.Request.URL.Parse(loc)
			return next, ""
		}
		m := formRe.FindStringSubmatch(string(body))
		if m == nil {
			return resp.Request.URL, string(body)
		}
		action, _ := resp.Request.URL.Parse(html.UnescapeString(m[1]))
		form := url.Values{}
		for _, h := range hiddenRe.FindAllStringSubmatch(m[2], -1) {
			form.Set(h[1], html.UnescapeString(h[2]))
		}
		switch action.Path {
		case "/login":
			p.pages = append(p.pages, "login")
			form.Set("username", p.username)
			form.Set("password", password)
		case "/consent":
			p.pages = append(p.pages, "consent")
			form.Set("consent", "allow")
			if p.deny {
				form.Set("consent", "deny")
			}
		case "/logout":
			p.pages = append(p.pages, "logout")
		default:
			return resp.Request.URL, string(body)
		}
		resp, err = p.client.PostForm(action.String(), form)
	}
	p.t.Fatalf("visit %s: still on Latchkey's pages after 10 forms (%v)", u, p.pages)
	return nil, ""
}

// sawLogin reports whether the login page was shown since the last call.
func (p *person) sawLogin() bool {
	defer func() { p.pages = nil }()
	for _, pg := range p.pages {
		if pg == "login" {
			return true
		}
	}
	return false
}
