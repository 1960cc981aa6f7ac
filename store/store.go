// Package store keeps Extagram's posts and images (S7 of the seed design).
// The database is the record: a post and its image bytes are written in one
// transaction, and the files in the uploads folder are only a fast copy.
// Two implementations share one interface and one conformance suite
// (storetest): MySQL/MariaDB through go-sql-driver/mysql, and an embedded,
// pure-Go SQLite database in a data folder for one-machine runs.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/extagram/extagram/internal/contract"
)

// Errors returned by every Store; callers test them with errors.Is.
var (
	// ErrNotFound: no post or image has the id.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate: a post or image with that id already exists.
	ErrDuplicate = errors.New("store: duplicate id")
	// ErrUnavailable wraps failures to reach the database (connection
	// refused, timeouts, server gone): the caller may try again later.
	ErrUnavailable = errors.New("store: database unavailable")
	// ErrRepeated: the post's request key was used before for the same
	// request; CreatePost returns the post stored then.
	ErrRepeated = errors.New("store: request already stored")
	// ErrKeyReused: the post's request key was used before for another
	// request.
	ErrKeyReused = errors.New("store: request key used for another request")
)

// Image is the metadata of a stored image.
type Image struct {
	ID          contract.ID
	ContentType string // image/jpeg, image/png, image/gif or image/webp
	Size        int64  // bytes
	SHA256      [32]byte
	Width       int
	Height      int
	CreatedAt   time.Time
}

// Post is a stored post. Image is nil for a text-only post.
type Post struct {
	// Key orders the feed: a later post has a larger key. It is the cursor
	// for keyset pagination and is not shown to users.
	Key       int64
	ID        contract.ID
	Text      string
	CreatedAt time.Time
	Image     *Image
}

// NewPost is what CreatePost stores.
type NewPost struct {
	ID    contract.ID
	Text  string
	Image *NewImage // nil for a text-only post
	// Request, when set, names the upload this post comes from, so that a
	// retry of it stores nothing (see CreatePost).
	Request *RequestKey
}

// RequestKey names an upload: Key is the SHA-256 of its idempotency key,
// Hash the SHA-256 of what it asked to store. Both are the caller's to
// compute; the store compares them.
type RequestKey struct {
	Key, Hash [32]byte
}

// RequestKeyLifetime is how long an idempotency key is remembered, at
// least: keys older than it may be forgotten (DeleteRequestKeys).
const RequestKeyLifetime = 24 * time.Hour

// NewImage is an image to store with its post. The store computes the size
// and the SHA-256 from Data.
type NewImage struct {
	ID          contract.ID
	ContentType string
	Width       int
	Height      int
	Data        []byte
}

// ListOptions selects a page of the feed.
type ListOptions struct {
	// Before is the Key of the last post of the previous page; 0 starts at
	// the newest post.
	Before int64
	// Limit is the number of posts wanted, at least 1.
	Limit int
}

// Store is the post and image store. Implementations are safe for
// concurrent use.
type Store interface {
	// CreatePost stores a post and its image (if any) in one transaction
	// and returns the stored post (with Key, CreatedAt and the image's size
	// and SHA-256 filled in). When p.Request names a key stored before, it
	// stores nothing: with the same Hash it returns the post stored then
	// and ErrRepeated, with another Hash ErrKeyReused. A retry that runs
	// while the first attempt's transaction is still open waits for it.
	CreatePost(ctx context.Context, p NewPost) (Post, error)
	// DeleteRequestKeys forgets the request keys stored before t and
	// returns how many it removed.
	DeleteRequestKeys(ctx context.Context, before time.Time) (int64, error)
	// GetPost returns one post, or ErrNotFound.
	GetPost(ctx context.Context, id contract.ID) (Post, error)
	// ListPosts returns up to opts.Limit posts, newest first, with
	// Key < opts.Before when opts.Before is not 0.
	ListPosts(ctx context.Context, opts ListOptions) ([]Post, error)
	// ImageInfo returns an image's metadata, or ErrNotFound.
	ImageInfo(ctx context.Context, id contract.ID) (Image, error)
	// ImageData returns an image's metadata and its bytes, or ErrNotFound.
	ImageData(ctx context.Context, id contract.ID) (Image, []byte, error)
	// ImageIDs returns up to limit image ids greater than after (in byte
	// order), smallest first; after's zero value starts at the beginning.
	// It lets the uploads folder be reconciled with the database.
	ImageIDs(ctx context.Context, after contract.ID, limit int) ([]contract.ID, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Outbox keeps the announcements of new posts (see Outbox).
	Outbox
	// Close releases the database.
	Close() error
}
