package oauth

import "testing"

func TestWantsMFA(t *testing.T) {
	for _, tc := range []struct {
		acrValues string
		want      bool
	}{
		{"", false},
		{ACRMFA, true},
		{"urn:other " + ACRMFA, true},
		{ACRMFA + " " + ACRPassword, false}, // either level will do
		{ACRPassword, false},
		{"mfa", false}, // only our URN; unknown values are voluntary
	} {
		if got := wantsMFA(tc.acrValues); got != tc.want {
			t.Errorf("wantsMFA(%q) = %v, want %v", tc.acrValues, got, tc.want)
		}
	}
}
