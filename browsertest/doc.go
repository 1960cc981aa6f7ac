// Package browsertest drives the feed page in headless Chromium (chromedp)
// against a whole mesh (internal/testmesh): publishing, the photo picker, the
// keyboard, axe-core on every page state at desktop and 360px phone widths,
// CSP violations and security headers on the console and responses. Tools:
// EXTAGRAM_CHROMIUM or chromium on PATH, EXTAGRAM_AXE_JS; outside CI a
// missing tool skips, with CI=true it fails. EXTAGRAM_UPDATE_SCREENSHOTS=1
// writes the screenshots to docs/screenshots/.
package browsertest
