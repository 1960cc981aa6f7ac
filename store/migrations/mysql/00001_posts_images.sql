-- Posts and their images (S7 of the seed design). Ids are the 16 raw bytes
-- of store.ID. Every text column is utf8mb4 with a binary collation, so text
-- round-trips byte for byte and compares by bytes, never by a locale's rules.
-- Times are UTC with microsecond precision.

-- +goose Up
CREATE TABLE images (
    id           BINARY(16)   NOT NULL,
    content_type VARCHAR(100) NOT NULL,
    size_bytes   BIGINT       NOT NULL,
    sha256       BINARY(32)   NOT NULL,
    width        INT          NOT NULL,
    height       INT          NOT NULL,
    data         LONGBLOB     NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- seq is the feed's keyset cursor (Post.Key): the feed is read newest first
-- on the primary key, so a page costs the same however deep it is.
CREATE TABLE posts (
    seq        BIGINT      NOT NULL AUTO_INCREMENT,
    id         BINARY(16)  NOT NULL,
    body       TEXT        NOT NULL,
    image_id   BINARY(16)  NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY posts_id (id),
    UNIQUE KEY posts_image_id (image_id),
    CONSTRAINT posts_image_fk FOREIGN KEY (image_id) REFERENCES images (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE posts;
DROP TABLE images;
