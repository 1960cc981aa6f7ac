-- The Telegram announcements outbox, with the same meaning as the MySQL
-- schema (see there). SQLite has one writer at a time, so a claim is a
-- plain read and update in one write transaction.

-- +goose Up
CREATE TABLE announcements (
    post_id    BLOB    NOT NULL PRIMARY KEY CHECK (length(post_id) = 16) REFERENCES posts (id),
    state      INTEGER NOT NULL DEFAULT 0,
    attempts   INTEGER NOT NULL DEFAULT 0,
    due_at     TEXT    NOT NULL,
    claim_id   BLOB    CHECK (claim_id IS NULL OR length(claim_id) = 16),
    created_at TEXT    NOT NULL,
    done_at    TEXT,
    message_id INTEGER,
    last_error TEXT
) STRICT;

CREATE INDEX announcements_due ON announcements (state, due_at);

CREATE TABLE announcement_chats (
    chat  TEXT NOT NULL PRIMARY KEY,
    since TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE announcement_chats;
DROP TABLE announcements;
