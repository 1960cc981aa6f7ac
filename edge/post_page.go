package edge

import (
	"net/http"
	"time"

	"github.com/extagram/extagram/edge/web"
	feedv1 "github.com/extagram/extagram/gen/extagram/feed/v1"
	"github.com/extagram/extagram/internal/contract"
)

// handlePost serves GET /posts/{id}: the page of one post, rendered with
// the feed's template, which the bot's announcements and replies link to.
// A malformed id is 400 and an unknown one 404, each with a page that says
// so and links to the newest posts.
func (e *Edge) handlePost(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	id := r.PathValue("id")
	if _, err := contract.ParseID(id); err != nil {
		e.render(w, r, http.StatusBadRequest, web.Feed{Now: now, NewestURL: "/",
			Error: "That post link is not valid: " + contract.IDForm + "."})
		return
	}
	post, err := e.backends.getPost(r.Context(), id)
	if err != nil {
		code := HTTPStatus(err)
		msg := userMessage(err)
		if code == http.StatusNotFound {
			msg = "No post has this link. It may have been mistyped."
		}
		e.render(w, r, code, web.Feed{Now: now, NewestURL: "/", Error: msg})
		return
	}
	page := web.Feed{Now: now, NewestURL: "/"}
	fillPosts(&page, &feedv1.ListPostsResponse{Posts: []*feedv1.Post{post}})
	e.render(w, r, http.StatusOK, page)
}
