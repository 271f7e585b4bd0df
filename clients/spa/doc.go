// Package spa holds the browser app example (src/, built into dist/ by
// `npm ci && npm run build`) and its end-to-end test in headless Chromium.
package spa
