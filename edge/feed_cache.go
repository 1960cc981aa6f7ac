package edge

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extagram/extagram/edge/web"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	"github.com/maypok86/otter/v2"
	"google.golang.org/protobuf/proto"
)

const (
	// watchStaleAfter is how long the newest page pushed by WatchFeed is
	// trusted without a message (the feed service sends one every 250 ms).
	// After it the edge asks per view again and watches anew, on another
	// replica if this one is frozen.
	watchStaleAfter = time.Second
	// ownPostWait bounds how long a post uploaded through this edge, and not
	// yet in the pushed page, makes the newest page be asked for per view.
	ownPostWait = 2 * time.Second
	// olderPageTTL is how long an older page is kept. Posts never change
	// and new ones go on top, so an older page stays right, with one
	// exception this bounds: a post whose commit came after that of twenty
	// newer ones (keys are handed out before commits) joins an older page.
	olderPageTTL = time.Minute
	// olderPagesBytes bounds the memory of the older pages kept.
	olderPagesBytes = 16 << 20
)

// feedCache serves feed pages without a call per view. The newest page is
// the one WatchFeed pushes, trusted while the stream speaks; older pages are
// kept by token for olderPageTTL. Whenever the watch is down or behind, the
// newest page is asked for per view, as it would be without the cache, so
// correctness and failover never depend on the watch.
type feedCache struct {
	backends *backends
	logger   *slog.Logger

	mu        sync.Mutex
	first     *cachedPage // the newest page as last pushed; nil when not watching
	lastHeard time.Time   // when the watch last spoke
	// own are posts uploaded through this edge that the pushed page does
	// not show yet, and until when to wait for them: their authors must see
	// them on the page the upload redirects to.
	own map[string]time.Time

	older *otter.Cache[string, *cachedPage]
}

func newFeedCache(b *backends, logger *slog.Logger) (*feedCache, error) {
	older, err := otter.New(&otter.Options[string, *cachedPage]{
		MaximumWeight: olderPagesBytes,
		// The page's messages and its HTML, about twice their size.
		Weigher:          func(_ string, p *cachedPage) uint32 { return uint32(3 * proto.Size(p.resp)) },
		ExpiryCalculator: otter.ExpiryWriting[string, *cachedPage](olderPageTTL),
	})
	if err != nil {
		return nil, err
	}
	return &feedCache{backends: b, logger: logger, own: map[string]time.Time{}, older: older}, nil
}

// page returns the page after token ("" for the newest page).
func (c *feedCache) page(ctx context.Context, token string) (*cachedPage, error) {
	if token == "" {
		if p := c.newest(time.Now()); p != nil {
			return p, nil
		}
		resp, err := c.backends.listPosts(ctx, "")
		if err != nil {
			return nil, err
		}
		return newCachedPage(resp, true), nil
	}
	// Concurrent requests for one page share one call, which runs on its
	// own deadline: one client going away must not fail the others.
	return c.older.Get(ctx, token, otter.LoaderFunc[string, *cachedPage](func(ctx context.Context, token string) (*cachedPage, error) {
		resp, err := c.backends.listPosts(context.WithoutCancel(ctx), token)
		if err != nil {
			return nil, err
		}
		return newCachedPage(resp, false), nil
	}))
}

// newest returns the pushed newest page when it can be trusted: the watch
// spoke recently and the page shows this edge's own recent posts.
func (c *feedCache) newest(now time.Time) *cachedPage {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first == nil || now.Sub(c.lastHeard) > watchStaleAfter {
		return nil
	}
	for id, until := range c.own {
		if c.first.has(id) || now.After(until) {
			delete(c.own, id)
		}
	}
	if len(c.own) > 0 {
		return nil
	}
	return c.first
}

// posted tells the cache of a post uploaded through this edge.
func (c *feedCache) posted(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.own[id] = time.Now().Add(ownPostWait)
}

// watch follows WatchFeed until ctx ends, watching again (after a short,
// growing pause) whenever the stream ends or goes quiet.
func (c *feedCache) watch(ctx context.Context) {
	const minPause, maxPause = 100 * time.Millisecond, time.Second
	pause := minPause
	for ctx.Err() == nil {
		heard, err := c.watchOnce(ctx)
		c.mu.Lock()
		c.first = nil
		c.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if heard {
			pause = minPause
		}
		c.logger.DebugContext(ctx, "feed watch ended; asking per view until it is back", "err", err, "retry_in", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, maxPause)
	}
}

// watchOnce follows one WatchFeed stream until it ends or stays silent for
// watchStaleAfter; heard says whether it delivered anything.
func (c *feedCache) watchOnce(ctx context.Context) (heard bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.backends.watchFeed(ctx)
	if err != nil {
		return false, err
	}
	silence := time.AfterFunc(watchStaleAfter, cancel)
	defer silence.Stop()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return heard, err
		}
		silence.Reset(watchStaleAfter)
		heard = true
		c.mu.Lock()
		c.lastHeard = time.Now()
		if p := msg.GetFirstPage(); p != nil {
			c.first = newCachedPage(p, true)
		}
		c.mu.Unlock()
	}
}

// cachedPage is a page of the feed and its HTML, rendered when first asked
// for and again only when a relative time on it moves on.
type cachedPage struct {
	resp   *feedv1.ListPostsResponse
	newest bool // the newest page: no "newest posts" link
	html   atomic.Pointer[renderedPage]
	render sync.Mutex
}

// renderedPage is a page's HTML, cut where each view's own upload token
// goes: before + token + after.
type renderedPage struct {
	before, after []byte
	until         time.Time
}

// tokenSlot stands for the upload token in a rendered page; it is found
// with the attribute around it, which no post's text can spell (its quotes
// are escaped).
const tokenSlot = "UPLOADTOKENUPLOADTOKEN"

var tokenSlotAttr = []byte(`name="idempotency_key" value="` + tokenSlot + `"`)

func newCachedPage(resp *feedv1.ListPostsResponse, newest bool) *cachedPage {
	return &cachedPage{resp: resp, newest: newest}
}

func (p *cachedPage) has(id string) bool {
	for _, post := range p.resp.GetPosts() {
		if post.GetId() == id {
			return true
		}
	}
	return false
}

// feed is the page as the template takes it.
func (p *cachedPage) feed(now time.Time) web.Feed {
	page := web.Feed{Now: now}
	fillPosts(&page, p.resp)
	if !p.newest {
		page.NewestURL = "/"
	}
	return page
}

// body returns the page's HTML as of now, in the two parts around the
// upload token.
func (p *cachedPage) body(now time.Time) (*renderedPage, error) {
	if r := p.html.Load(); r != nil && now.Before(r.until) {
		return r, nil
	}
	p.render.Lock()
	defer p.render.Unlock()
	if r := p.html.Load(); r != nil && now.Before(r.until) {
		return r, nil
	}
	page := p.feed(now)
	page.UploadToken = tokenSlot
	var buf bytes.Buffer
	if err := web.RenderFeed(&buf, page); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	i := bytes.Index(b, tokenSlotAttr)
	if i < 0 {
		return nil, errors.New("render feed: the page has no upload token field")
	}
	i += len(tokenSlotAttr) - len(tokenSlot) - 1
	r := &renderedPage{before: b[:i], after: b[i+len(tokenSlot):], until: web.LabelsUntil(page)}
	p.html.Store(r)
	return r, nil
}
