package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

// Every profile rule, each case a user created with one field set: accepted
// (and stored as want, when that differs from what was sent) or refused with
// an *InputError and nothing stored.
func TestUserProfileRules(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, st, _ := service(t, b)
		ctx := context.Background()
		manyGroups := make([]string, maxGroups+1)
		for i := range manyGroups {
			manyGroups[i] = fmt.Sprintf("g%d", i)
		}
		cases := []struct {
			name string
			p    Profile
			ok   bool
			want func(p Profile) bool // what is stored, when accepted
		}{
			{"empty profile", Profile{}, true, nil},
			{"email", Profile{Email: "alice@example.com", EmailVerified: true}, true, nil},
			{"email with plus and subdomain", Profile{Email: "a.b+c@mail.example.co.uk"}, true, nil},
			{"email with display name", Profile{Email: "Alice <alice@example.com>"}, false, nil},
			{"two emails", Profile{Email: "a@example.com, b@example.com"}, false, nil},
			{"email without domain", Profile{Email: "alice"}, false, nil},
			{"email with comment", Profile{Email: "alice@example.com (work)"}, false, nil},
			{"email with newline", Profile{Email: "alice@example.com\nBcc: x@example.com"}, false, nil},
			{"email too long", Profile{Email: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190) + ".com"}, false, nil},
			{"verified without email", Profile{EmailVerified: true}, false, nil},
			{"names", Profile{Name: "Zoë Ålund-Ng", GivenName: "Zoë", FamilyName: "Ålund-Ng"}, true, nil},
			{"CJK name", Profile{Name: "山田太郎"}, true, nil},
			{"256-character name", Profile{Name: strings.Repeat("é", 256)}, true, nil},
			{"257-character name", Profile{Name: strings.Repeat("é", 257)}, false, nil},
			{"name with escape", Profile{Name: "a\x1b[31mb"}, false, nil},
			{"given name with newline", Profile{GivenName: "a\nb"}, false, nil},
			{"family name with NUL", Profile{FamilyName: "a\x00b"}, false, nil},
			{"family name with DEL", Profile{FamilyName: "a\x7f"}, false, nil},
			{"name not UTF-8", Profile{Name: "a\xffb"}, false, nil},
			{"name with U+FFFD", Profile{Name: "a\ufffdb"}, false, nil},
			{"https picture", Profile{Picture: "https://img.example/a.png?s=64"}, true, nil},
			{"http picture on 127.0.0.1", Profile{Picture: "http://127.0.0.1:8080/a.png"}, true, nil},
			{"http picture on [::1]", Profile{Picture: "http://[::1]/a.png"}, true, nil},
			{"http picture on localhost", Profile{Picture: "http://localhost/a.png"}, true, nil},
			{"http picture elsewhere", Profile{Picture: "http://img.example/a.png"}, false, nil},
			{"relative picture", Profile{Picture: "/a.png"}, false, nil},
			{"javascript picture", Profile{Picture: "javascript:alert(1)"}, false, nil},
			{"data picture", Profile{Picture: "data:image/png;base64,AAAA"}, false, nil},
			{"picture with user info", Profile{Picture: "https://u:p@img.example/a.png"}, false, nil},
			{"picture without host", Profile{Picture: "https:///a.png"}, false, nil},
			{"picture too long", Profile{Picture: "https://img.example/" + strings.Repeat("a", maxPictureLen)}, false, nil},
			{"locale", Profile{Locale: "en-US"}, true, nil},
			{"locale made canonical", Profile{Locale: "en_us"}, true, func(p Profile) bool { return p.Locale == "en-US" }},
			{"locale with script", Profile{Locale: "zh-Hant-TW"}, true, nil},
			{"locale language only", Profile{Locale: "fr"}, true, nil},
			{"locale not a tag", Profile{Locale: "english please"}, false, nil},
			{"locale bad subtag", Profile{Locale: "en-US-x"}, false, nil},
			{"groups", Profile{Groups: []string{"admins", "Ops team", "équipe"}}, true, nil},
			{"groups keep their order", Profile{Groups: []string{"b", "a"}}, true, func(p Profile) bool { return slices.Equal(p.Groups, []string{"b", "a"}) }},
			{"100 groups", Profile{Groups: manyGroups[:maxGroups]}, true, nil},
			{"101 groups", Profile{Groups: manyGroups}, false, nil},
			{"duplicate group", Profile{Groups: []string{"a", "b", "a"}}, false, nil},
			{"empty group", Profile{Groups: []string{""}}, false, nil},
			{"group with tab", Profile{Groups: []string{"a\tb"}}, false, nil},
			{"group with zero-width space", Profile{Groups: []string{"a\u200bb"}}, false, nil},
			{"group too long", Profile{Groups: []string{strings.Repeat("g", maxGroupLen+1)}}, false, nil},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before, _ := st.ListUsers(ctx)
				u, err := svc.CreateUserWithProfile(ctx, fmt.Sprintf("user%d", i), "password-1", tc.p)
				after, _ := st.ListUsers(ctx)
				if !tc.ok {
					var ie *InputError
					if !errors.As(err, &ie) || ie.Description == "" {
						t.Fatalf("got %v, want an *InputError", err)
					}
					if len(after) != len(before) {
						t.Fatal("a refused user was stored")
					}
					return
				}
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				got, err := svc.GetUser(ctx, u.ID)
				if err != nil {
					t.Fatal(err)
				}
				if tc.want == nil {
					want := tc.p
					want.Groups = append([]string{}, want.Groups...)
					if !sameProfile(got.Profile, want) {
						t.Fatalf("stored %+v, want %+v", got.Profile, want)
					}
				} else if !tc.want(got.Profile) {
					t.Fatalf("stored %+v", got.Profile)
				}
				if !sameProfile(got.Profile, u.Profile) {
					t.Fatalf("create answered %+v, GetUser %+v", u.Profile, got.Profile)
				}
			})
		}
	})
}

func sameProfile(a, b Profile) bool {
	return a.Email == b.Email && a.EmailVerified == b.EmailVerified && a.Name == b.Name && a.GivenName == b.GivenName &&
		a.FamilyName == b.FamilyName && a.Picture == b.Picture && a.Locale == b.Locale &&
		slices.Equal(a.Groups, b.Groups) && a.Groups != nil && b.Groups != nil
}

// The admin API end to end: POST with every field, GET one and the list,
// PATCH that changes only what it names, null that clears, and the refusals
// (password, unknown field, bad value, wrong type, unknown user), none of
// which changes the user.
func TestUserProfileAPI(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, _, _ := service(t, b)
		mux := http.NewServeMux()
		NewAPI(svc, nil, clientsAdminToken, slog.New(slog.DiscardHandler)).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		s := adminServer{t, srv.URL}

		userOf := func(raw []byte) map[string]any {
			t.Helper()
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("%v: %s", err, raw)
			}
			return m
		}
		status, raw := s.admin(http.MethodPost, "/admin/users", `{"username":"zoe","password":"zoe-password-1",
			"email":"zoe@example.com","email_verified":true,"name":"Zoë Ålund","given_name":"Zoë","family_name":"Ålund",
			"picture":"https://img.example/zoe.png","locale":"sv_se","groups":["admins","ops"]}`)
		if status != http.StatusCreated {
			t.Fatalf("create: %d %s", status, raw)
		}
		created := userOf(raw)
		id, _ := created["id"].(string)
		want := map[string]any{
			"username": "zoe", "email": "zoe@example.com", "email_verified": true, "name": "Zoë Ålund",
			"given_name": "Zoë", "family_name": "Ålund", "picture": "https://img.example/zoe.png", "locale": "sv-SE",
			"groups": []any{"admins", "ops"},
		}
		check := func(what string, got map[string]any, want map[string]any) {
			t.Helper()
			for k, v := range want {
				if fmt.Sprint(got[k]) != fmt.Sprint(v) {
					t.Errorf("%s: %s = %v, want %v", what, k, got[k], v)
				}
			}
			if _, ok := got["password_hash"]; ok || strings.Contains(fmt.Sprint(got), "argon2") {
				t.Errorf("%s shows the password hash: %v", what, got)
			}
		}
		check("create", created, want)
		status, raw = s.admin(http.MethodGet, "/admin/users/"+id, "")
		if status != http.StatusOK {
			t.Fatalf("get: %d %s", status, raw)
		}
		check("get", userOf(raw), want)
		status, raw = s.admin(http.MethodGet, "/admin/users", "")
		var list []map[string]any
		if status != http.StatusOK || json.Unmarshal(raw, &list) != nil || len(list) != 1 {
			t.Fatalf("list: %d %s", status, raw)
		}
		check("list", list[0], want)

		// PATCH changes what it names; the rest stays.
		status, raw = s.admin(http.MethodPatch, "/admin/users/"+id, `{"name":"Zoë Å.","groups":["ops","auditors"]}`)
		if status != http.StatusOK {
			t.Fatalf("patch: %d %s", status, raw)
		}
		want["name"], want["groups"] = "Zoë Å.", []any{"ops", "auditors"}
		check("patch answer", userOf(raw), want)
		_, raw = s.admin(http.MethodGet, "/admin/users/"+id, "")
		check("get after patch", userOf(raw), want)

		// A changed email is unverified unless the patch says otherwise.
		_, raw = s.admin(http.MethodPatch, "/admin/users/"+id, `{"email":"zoe@example.org"}`)
		want["email"], want["email_verified"] = "zoe@example.org", false
		check("new email", userOf(raw), want)

		// null clears; an empty list clears the groups.
		status, raw = s.admin(http.MethodPatch, "/admin/users/"+id, `{"email":null,"picture":null,"locale":null,"given_name":null,"groups":[]}`)
		if status != http.StatusOK {
			t.Fatalf("clearing patch: %d %s", status, raw)
		}
		got := userOf(raw)
		for _, k := range []string{"email", "picture", "locale", "given_name"} {
			if _, ok := got[k]; ok {
				t.Errorf("%s still shown after null: %v", k, got[k])
			}
		}
		delete(want, "email")
		delete(want, "picture")
		delete(want, "locale")
		delete(want, "given_name")
		want["groups"] = []any{}
		check("cleared", got, want)

		// Refusals change nothing. (Compared with a GET: PostgreSQL keeps
		// microseconds, so updated_at in the PATCH answer may be finer.)
		_, raw = s.admin(http.MethodGet, "/admin/users/"+id, "")
		before := string(raw)
		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			code                     string
		}{
			{"password in patch", http.MethodPatch, "/admin/users/" + id, `{"password":"new-password-1"}`, 400, "invalid_request"},
			{"password with a name", http.MethodPatch, "/admin/users/" + id, `{"name":"X","password":"new-password-1"}`, 400, "invalid_request"},
			{"unknown field", http.MethodPatch, "/admin/users/" + id, `{"name":"X","nickname":"x"}`, 400, "invalid_request"},
			{"bad email", http.MethodPatch, "/admin/users/" + id, `{"name":"X","email":"not an address"}`, 400, "invalid_request"},
			{"verified without email", http.MethodPatch, "/admin/users/" + id, `{"email_verified":true}`, 400, "invalid_request"},
			{"http picture", http.MethodPatch, "/admin/users/" + id, `{"picture":"http://img.example/a.png"}`, 400, "invalid_request"},
			{"bad locale", http.MethodPatch, "/admin/users/" + id, `{"locale":"xx-notalocale-!"}`, 400, "invalid_request"},
			{"duplicate group", http.MethodPatch, "/admin/users/" + id, `{"groups":["a","a"]}`, 400, "invalid_request"},
			{"group not a string", http.MethodPatch, "/admin/users/" + id, `{"groups":[1]}`, 400, "invalid_request"},
			{"name not a string", http.MethodPatch, "/admin/users/" + id, `{"name":5}`, 400, "invalid_request"},
			{"control character", http.MethodPatch, "/admin/users/" + id, `{"family_name":"a\u0007b"}`, 400, "invalid_request"},
			{"username null", http.MethodPatch, "/admin/users/" + id, `{"username":null}`, 400, "invalid_request"},
			{"not an object", http.MethodPatch, "/admin/users/" + id, `["name"]`, 400, "invalid_request"},
			{"unknown user patch", http.MethodPatch, "/admin/users/nobody", `{"name":"X"}`, 404, "not_found"},
			{"unknown user get", http.MethodGet, "/admin/users/nobody", ``, 404, "not_found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, raw := s.admin(tc.method, tc.path, tc.body)
				wantAPIError(t, tc.name, status, raw, tc.status, tc.code)
				_, now := s.admin(http.MethodGet, "/admin/users/"+id, "")
				if string(now) != before {
					t.Fatalf("a refused request changed the user:\n%s\nwas\n%s", now, before)
				}
			})
		}

		// A rename onto a taken username is a conflict.
		if status, raw := s.admin(http.MethodPost, "/admin/users", `{"username":"yan","password":"yan-password-1"}`); status != http.StatusCreated {
			t.Fatalf("create yan: %d %s", status, raw)
		}
		status, raw = s.admin(http.MethodPatch, "/admin/users/"+id, `{"username":"yan"}`)
		wantAPIError(t, "rename onto a taken name", status, raw, http.StatusConflict, "conflict")
	})
}

// Concurrent PATCHes of one user, each setting another field, all land:
// the service's read-modify-write runs under the store's row lock.
func TestConcurrentUserPatchesNoneLost(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, b storetest.Backend) {
		svc, _, _ := service(t, b)
		ctx := context.Background()
		u, err := svc.CreateUser(ctx, "contended", "password-1")
		if err != nil {
			t.Fatal(err)
		}
		patches := []string{
			`{"email":"c@example.com","email_verified":true}`, `{"name":"C"}`, `{"given_name":"G"}`,
			`{"family_name":"F"}`, `{"picture":"https://img.example/c.png"}`, `{"locale":"de-CH"}`, `{"groups":["x"]}`,
		}
		errs := make(chan error, len(patches))
		start := make(chan struct{})
		for _, body := range patches {
			go func() {
				var p UserPatch
				if err := json.Unmarshal([]byte(body), &p); err != nil {
					errs <- err
					return
				}
				<-start
				_, err := svc.UpdateUser(ctx, u.ID, &p)
				errs <- err
			}()
		}
		close(start)
		for range patches {
			if err := <-errs; err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}
		}
		got, err := svc.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := Profile{
			Email: "c@example.com", EmailVerified: true, Name: "C", GivenName: "G", FamilyName: "F",
			Picture: "https://img.example/c.png", Locale: "de-CH", Groups: []string{"x"},
		}
		if !sameProfile(got.Profile, want) {
			t.Fatalf("after concurrent patches %+v, want %+v: an update was lost", got.Profile, want)
		}
	})
}
