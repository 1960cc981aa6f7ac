package browsertest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/extagram/extagram/internal/contract"
	"github.com/extagram/extagram/internal/testmesh"
	"github.com/extagram/extagram/internal/testutil"
)

// pageState is one state of the page a person can see.
type pageState struct {
	name string
	mesh *testmesh.Mesh
	// load brings the tab into the state.
	load func(t *testing.T, tb *tab)
}

// pageStates starts the meshes behind the states: one with a page and a
// half of posts (photos of several shapes, a long unbroken word), one empty.
func pageStates(t *testing.T) []pageState {
	t.Helper()
	full, empty := startMesh(t), startMesh(t)
	publish(t, full, "the oldest post", testutil.EncodePNG(t, photo(300, 300, 2)))
	for i := range 19 {
		publish(t, full, "filler post "+strconv.Itoa(i+1), nil)
	}
	publish(t, full, "a wide panorama", testutil.EncodePNG(t, photo(1600, 500, 0)))
	publish(t, full, "a tall portrait", testutil.EncodePNG(t, photo(400, 700, 3)))
	publish(t, full, "a long word: "+strings.Repeat("supercalifragilistic", 12)+" and a link-like text https://example.invalid/"+strings.Repeat("x", 120), nil)
	publish(t, full, "the newest post, with a photo", testutil.EncodePNG(t, photo(1080, 720, 1)))

	newest := storedPosts(t, full)[0].ID.String()
	notImage := writeFile(t, "notes.png", []byte("not a picture\n"))
	pic := writeFile(t, "chosen.png", testutil.EncodePNG(t, photo(800, 600, 0)))
	return []pageState{
		{"posts", full, func(t *testing.T, tb *tab) { tb.open("/", http.StatusOK) }},
		{"older", full, func(t *testing.T, tb *tab) {
			tb.open("/", http.StatusOK)
			tb.load(chromedp.Click(chromedp.CSS(".pager .older")))
			tb.do(chromedp.WaitVisible(chromedp.CSS(".pager .newest")))
		}},
		{"empty", empty, func(t *testing.T, tb *tab) { tb.open("/", http.StatusOK) }},
		// The page of one post, which Telegram messages link to, and the
		// page of a link to no post.
		{"post", full, func(t *testing.T, tb *tab) { tb.open("/posts/"+newest, http.StatusOK) }},
		{"post-not-found", full, func(t *testing.T, tb *tab) {
			tb.expectConsole("the server responded with a status of 404")
			tb.open("/posts/"+contract.NewID().String(), http.StatusNotFound)
		}},
		{"photo-chosen", full, func(t *testing.T, tb *tab) {
			tb.open("/", http.StatusOK)
			tb.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{pic}), chromedp.WaitVisible(chromedp.ID("remove")))
			tb.waitJS(`document.getElementById("preview").src.startsWith("blob:") && document.getElementById("preview").complete`)
		}},
		{"not-an-image-chosen", full, func(t *testing.T, tb *tab) {
			tb.open("/", http.StatusOK)
			tb.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{notImage}), chromedp.WaitVisible(chromedp.ID("photo-note")))
		}},
		{"error", full, func(t *testing.T, tb *tab) {
			tb.open("/", http.StatusOK)
			tb.do(
				chromedp.SendKeys(chromedp.ID("post"), "a draft that must survive "+strings.Repeat("long", 30)),
				chromedp.SetUploadFiles(chromedp.ID("file"), []string{notImage}),
			)
			tb.expectConsole("the server responded with a status of 415")
			if resp := tb.load(chromedp.Click(chromedp.ID("publish"))); resp.Status != http.StatusUnsupportedMediaType {
				t.Fatalf("upload of a text file: %d, want 415", resp.Status)
			}
			tb.do(chromedp.WaitVisible(chromedp.ID("upload-error")))
		}},
	}
}

// forEachState runs check on every state, each in a new tab of the given
// viewport.
func forEachState(t *testing.T, states []pageState, vp viewport, check func(t *testing.T, tb *tab)) {
	for _, s := range states {
		t.Run(s.name, func(t *testing.T) {
			tb := newTab(t, s.mesh, vp)
			s.load(t, tb)
			// Wait for the images in the first screen, as a person would.
			tb.waitJS(`Array.from(document.images).filter((i) => i.getBoundingClientRect().top < innerHeight && i.loading !== "lazy").every((i) => i.complete)`)
			check(t, tb)
		})
	}
}

// Every state of the page, on a desktop and on a 360px phone: axe-core finds
// no accessibility violation, and the page does not scroll sideways.
func TestPageStates(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	states := pageStates(t)
	for _, vp := range []viewport{desktop, phone} {
		t.Run(vp.name, func(t *testing.T) {
			forEachState(t, states, vp, func(t *testing.T, tb *tab) {
				tb.noHorizontalScroll(t.Name(), vp.width)
				for _, v := range runAxe(t, tb, axe) {
					for _, n := range v.Nodes {
						t.Errorf("axe %s (%s): %s\n\t%s %s\n\t%s", v.ID, v.Impact, v.Help, strings.Join(n.Target, " "), n.HTML, strings.ReplaceAll(n.Summary, "\n", "\n\t"))
					}
				}
			})
		})
	}
}

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []string `json:"target"`
		HTML    string   `json:"html"`
		Summary string   `json:"failureSummary"`
	} `json:"nodes"`
}

// The axe check sees what it should: a photo without alt text and text
// without contrast, made on purpose, are reported.
func TestAxeSeesViolations(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	m := startMesh(t)
	publish(t, m, "a photo", testutil.EncodePNG(t, photo(60, 40, 0)))
	tb := newTab(t, m, desktop)
	tb.open("/", http.StatusOK)
	// CSSOM changes are not inline style for the CSP; setAttribute("style")
	// would be.
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("main .post img").removeAttribute("alt");
		document.querySelector(".site-name a").style.color = "#eeeeee";`))
	found := map[string]bool{}
	for _, v := range runAxe(t, tb, axe) {
		found[v.ID] = true
	}
	if !found["image-alt"] || !found["color-contrast"] {
		t.Errorf("axe found %v, want image-alt and color-contrast", found)
	}
}

// runAxe injects axe-core through the DevTools protocol (Runtime.evaluate,
// which the page's CSP does not govern: a <script> element with the same
// code would be refused), runs it on the whole document and returns the
// violations.
func runAxe(t *testing.T, tb *tab, source string) []axeViolation {
	t.Helper()
	if !eval[bool](tb, `typeof window.axe === "object"`) {
		tb.do(chromedp.Evaluate[chromedp.Void](source))
	}
	raw := eval[[]byte](tb, `axe.run(document, {resultTypes: ["violations"]}).then((r) => ({
		violations: r.violations, passes: r.passes.length, incomplete: r.incomplete.map((i) => i.id), version: r.testEngine.version}))`)
	var res struct {
		Violations []axeViolation `json:"violations"`
		Incomplete []string       `json:"incomplete"`
		Version    string         `json:"version"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("axe result: %v\n%s", err, raw)
	}
	if res.Version == "" {
		t.Fatal("axe did not run")
	}
	if len(res.Incomplete) > 0 {
		t.Logf("axe %s: needs review by a person: %v", res.Version, res.Incomplete)
	}
	return res.Violations
}
