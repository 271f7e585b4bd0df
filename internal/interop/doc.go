// Package interop holds no code of its own: its tests sign people in with
// Latchkey through the client libraries people use, each in its normal
// configuration (discovery from the issuer, the library's default client
// authentication), and check what those libraries check.
//
//   - golang.org/x/oauth2 with github.com/coreos/go-oidc/v3 (oidc_go_test.go),
//     for ID tokens signed with RS256, ES256 and EdDSA;
//   - openid-client and oidc-client-ts in headless Chromium (browser_test.go),
//     from the pages in web/ (npm ci && npm run build, as .ci/run does);
//   - oauth2-proxy in front of the reference API (oauth2proxy_test.go), from the
//     binary .ci/run builds out of .ci/interop and names in
//     LATCHKEY_OAUTH2_PROXY_BIN.
//
// The person signs in through Latchkey's own pages: Chromium, or, for the Go
// libraries, an HTTP client with a cookie jar that fills in the login and
// consent forms (person.go).
package interop
