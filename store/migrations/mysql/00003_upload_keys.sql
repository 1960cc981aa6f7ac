-- Idempotency keys of uploads: a retried upload with the key of an earlier
-- one returns that upload's post instead of storing a second. key_hash is
-- the SHA-256 of the key as the upload service received it; request_hash
-- the SHA-256 of the text and photo, so a key reused for another request
-- is told apart. Rows older than the keys' lifetime are deleted by the
-- upload service.

-- +goose Up
CREATE TABLE upload_keys (
    key_hash     BINARY(32)  NOT NULL,
    request_hash BINARY(32)  NOT NULL,
    post_id      BINARY(16)  NOT NULL,
    created_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (key_hash),
    KEY upload_keys_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE upload_keys;
