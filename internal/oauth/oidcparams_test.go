package oauth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/store"
)

func TestParseMaxAge(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"3600", 3600, true}, {"007", 7, true},
		{"99999999999999999999", 1<<63 - 1, true},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {" 1", 0, false}, {"1 ", 0, false},
		{"1.0", 0, false}, {"1e3", 0, false}, {"0x1", 0, false}, {"abc", 0, false}, {"١", 0, false},
	} {
		got, err := parseMaxAge(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("parseMaxAge(%q) = %d, %v; want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestLoginTooOld(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, c := range []struct {
		maxAge int64
		ago    time.Duration
		want   bool
	}{
		{-1, 100 * time.Hour, false},
		{0, 0, true},
		{1, time.Second, false},
		{1, 2 * time.Second, true},
		{60, 59 * time.Second, false},
		{1<<63 - 1, 100000 * time.Hour, false},
	} {
		o := &oidcRequest{maxAge: c.maxAge}
		if got := o.loginTooOld(now.Add(-c.ago), now); got != c.want {
			t.Errorf("max_age=%d, signed in %s ago: %v, want %v", c.maxAge, c.ago, got, c.want)
		}
	}
}

func TestProfileClaims(t *testing.T) {
	u := &store.User{ID: "u1", Username: "ann", Name: "Ann", Email: "ann@example.com", EmailVerified: false,
		Groups: []string{"g"}, UpdatedAt: time.Unix(1700000000, 0)}
	marshal := func(c userClaims) string {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	got := marshal(profileClaims(u, []string{"openid", "profile", "email", "groups"}))
	want := `{"name":"Ann","preferred_username":"ann","updated_at":1700000000,"email":"ann@example.com","email_verified":false,"groups":["g"]}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := marshal(profileClaims(u, []string{"openid"})); got != "{}" {
		t.Errorf("openid alone: %s", got)
	}
	if got := marshal(profileClaims(&store.User{Username: "bo"}, []string{"email", "groups"})); got != "{}" {
		t.Errorf("no email, no groups: %s", got)
	}
}
