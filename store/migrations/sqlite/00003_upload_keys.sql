-- Idempotency keys of uploads, as in the MySQL schema.

-- +goose Up
CREATE TABLE upload_keys (
    key_hash     BLOB NOT NULL PRIMARY KEY CHECK (length(key_hash) = 32),
    request_hash BLOB NOT NULL CHECK (length(request_hash) = 32),
    post_id      BLOB NOT NULL CHECK (length(post_id) = 16),
    created_at   TEXT NOT NULL
) STRICT;
CREATE INDEX upload_keys_created_at ON upload_keys (created_at);

-- +goose Down
DROP TABLE upload_keys;
