package login

import (
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// One step of drift either way is accepted, two are not, and the match
// says which step it was (the counter that makes a code single use).
func TestMatchTOTPWindow(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXP"
	now := time.Unix(1_800_000_015, 0)
	step := now.Unix() / totpPeriod
	for _, tc := range []struct {
		name   string
		offset int64
		ok     bool
	}{
		{"two steps early", -2, false}, {"one step early", -1, true}, {"now", 0, true},
		{"one step late", 1, true}, {"two steps late", 2, false},
	} {
		code, err := totp.GenerateCodeCustom(secret, time.Unix((step+tc.offset)*totpPeriod, 0), totpOpts())
		if err != nil {
			t.Fatal(err)
		}
		got, ok := matchTOTP(secret, code, now)
		if ok != tc.ok || (ok && got != step+tc.offset) {
			t.Errorf("%s: step %d ok %v, want ok %v at step %d", tc.name, got, ok, tc.ok, step+tc.offset)
		}
	}
}

// Recovery codes are distinct, in the shown format, and match however
// they are typed, for their owner only.
func TestRecoveryCodes(t *testing.T) {
	codes, hashes, err := newRecoveryCodes("u1")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 11 || c[5] != '-' || strings.Trim(strings.ReplaceAll(c, "-", ""), recoveryAlphabet) != "" || seen[c] {
			t.Errorf("code %q", c)
		}
		seen[c] = true
		typed := " " + strings.ToUpper(strings.ReplaceAll(c, "-", " ")) + " "
		if recoveryHash("u1", typed) != hashes[i] {
			t.Errorf("%q typed as %q does not match", c, typed)
		}
		if recoveryHash("u2", c) == hashes[i] {
			t.Errorf("%q matches for another person", c)
		}
	}
}

// The QR code is markup of numbers only: nothing of the encoded URI (the
// secret, the username) reaches the HTML.
func TestQRCodeCarriesNoContent(t *testing.T) {
	svg, err := qrCode(`otpauth://totp/Latchkey:"><script>?secret=SECRETSECRET`)
	if err != nil {
		t.Fatal(err)
	}
	s := string(svg)
	if !strings.HasPrefix(s, "<svg") || strings.Contains(s, "script") || strings.Contains(s, "SECRET") || !strings.Contains(s, "h1v1h-1z") {
		t.Errorf("svg: %.200s", s)
	}
}

// The amr of each way through (RFC 8176): a passkey alone is hwk (swk when
// synced), with mfa only when the authenticator verified the person; a
// factor given later adds to what the session had, and never claims a
// password that was not typed.
func TestPasskeyAMR(t *testing.T) {
	for _, c := range []struct {
		name string
		got  []string
		want string
	}{
		{"passkey, verified", passkeyAMR(false, true), "hwk mfa"},
		{"passkey, presence only", passkeyAMR(false, false), "hwk"},
		{"synced passkey, verified", passkeyAMR(true, true), "swk mfa"},
		{"password then passkey", raisedAMR([]string{AMRPassword}, passkeyAMR(false, false)), "pwd hwk mfa"},
		{"password then TOTP", raisedAMR([]string{AMRPassword}, []string{AMROTP, AMRMFA}), "pwd otp mfa"},
		{"unverified passkey then TOTP", raisedAMR(passkeyAMR(false, false), []string{AMROTP, AMRMFA}), "hwk otp mfa"},
		{"unverified passkey then verified passkey", raisedAMR(passkeyAMR(true, false), passkeyAMR(true, false)), "swk mfa"},
	} {
		if got := strings.Join(c.got, " "); got != c.want {
			t.Errorf("%s: amr %q, want %q", c.name, got, c.want)
		}
	}
}
