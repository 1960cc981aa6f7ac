-- The Telegram announcements outbox. CreatePost writes one row per post in
-- the post's own transaction, so the intent to announce a post is committed
-- with it: a crash or a Telegram outage loses nothing. Feed replicas with a
-- bot configured claim due rows (SELECT ... FOR UPDATE SKIP LOCKED, then a
-- lease in due_at), send them, and record the outcome; a feed without a bot
-- never touches them.
--
-- state: 0 pending, 1 sent, 2 failed (not sent within the time bound),
-- 3 skipped (the post was made before the bot was connected to the chat).
-- due_at: when a pending row may next be claimed; while it is claimed, the
-- end of the lease, which the claimer extends while it sends.
-- claim_id: the token of the current claim; only its holder may record the
-- outcome.

-- +goose Up
CREATE TABLE announcements (
    post_id    BINARY(16)   NOT NULL,
    state      TINYINT      NOT NULL DEFAULT 0,
    attempts   INT          NOT NULL DEFAULT 0,
    due_at     DATETIME(6)  NOT NULL,
    claim_id   BINARY(16)   NULL,
    created_at DATETIME(6)  NOT NULL,
    done_at    DATETIME(6)  NULL,
    message_id BIGINT       NULL,
    last_error VARCHAR(500) NULL,
    PRIMARY KEY (post_id),
    KEY announcements_due (state, due_at),
    CONSTRAINT announcements_post_fk FOREIGN KEY (post_id) REFERENCES posts (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- When announcing in a chat began: posts made before it (while no bot was
-- configured for that chat) are skipped rather than announced late.
CREATE TABLE announcement_chats (
    chat  VARCHAR(100) NOT NULL,
    since DATETIME(6)  NOT NULL,
    PRIMARY KEY (chat)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE announcement_chats;
DROP TABLE announcements;
