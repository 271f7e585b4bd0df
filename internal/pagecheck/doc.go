// Package pagecheck holds no code of its own: its test opens every HTML page
// Latchkey draws (login, consent, second factor, account, password reset,
// e-mail verification, device code, sign-out, error and 404 pages, with and
// without an error shown) in headless Chromium, runs axe-core on each for
// WCAG 2.2 level AA in light and dark colour schemes and at mobile width,
// checks by hand what axe cannot see (reflow at 320 CSS pixels, the focus
// ring and order, errors tied to their fields, autocomplete, lang), and
// writes a screenshot of each page in four variants to
// LATCHKEY_SCREENSHOT_DIR (or a temporary folder).
//
// axe-core comes from axe/package-lock.json (npm ci in axe/, as .ci/run
// does) and is evaluated through the DevTools protocol, so the pages'
// Content-Security-Policy (no script at all) stays as it is.
package pagecheck
