// Package browsertest drives the feed page in a real browser: Debian's
// Chromium, headless, through chromedp, against a whole mesh started on
// ephemeral ports (internal/testmesh). The tests publish a post with a photo,
// upload a file that is not an image, check the page at a 360px phone width,
// run axe-core inside the page, walk it with the keyboard, and watch the
// console for CSP violations and errors. The package has tests only.
//
// Chromium comes from EXTAGRAM_CHROMIUM or the PATH (chromium,
// chromium-browser, google-chrome); axe-core from EXTAGRAM_AXE_JS or
// /opt/extagram-tools/node_modules/axe-core/axe.min.js. Outside CI a missing
// tool skips the tests with a message; with CI=true it fails them.
// EXTAGRAM_UPDATE_SCREENSHOTS=1 writes the screenshots to docs/screenshots/.
package browsertest
