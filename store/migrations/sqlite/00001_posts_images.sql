-- Posts and their images, with the same meaning as the MySQL schema. STRICT
-- tables reject values of the wrong type, as MySQL's columns do. Ids are the
-- 16 raw bytes of store.ID; BLOBs compare with memcmp, so ImageIDs orders by
-- bytes as MySQL's BINARY does. Times are UTC text with microseconds,
-- 'YYYY-MM-DD HH:MM:SS.ffffff', which SQLite's date functions understand and
-- which sorts in time order.

-- +goose Up
CREATE TABLE images (
    id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    content_type TEXT    NOT NULL,
    size_bytes   INTEGER NOT NULL,
    sha256       BLOB    NOT NULL CHECK (length(sha256) = 32),
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    created_at   TEXT    NOT NULL
) STRICT;

-- seq is the feed's keyset cursor (Post.Key). AUTOINCREMENT keeps keys
-- growing even after the newest post is deleted, as MySQL's AUTO_INCREMENT
-- does, so a cursor never points at a reused key.
CREATE TABLE posts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    body       TEXT    NOT NULL,
    image_id   BLOB    UNIQUE REFERENCES images (id),
    created_at TEXT    NOT NULL
) STRICT;

-- +goose Down
DROP TABLE posts;
DROP TABLE images;
