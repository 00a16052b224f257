-- iyagi schema v1 (SQLite). Keep in step with migrations/postgres/0001_init.sql.
-- Times are milliseconds since the Unix epoch (BIGINT) on both backends, so one
-- SQL text serves both and ordering is integer comparison.

CREATE TABLE users (
    id               BLOB PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    password_hash    TEXT,
    external_issuer  TEXT,
    external_subject TEXT,
    created_at_ms    BIGINT NOT NULL,
    UNIQUE (external_issuer, external_subject)
);

CREATE TABLE devices (
    user_id         BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id       TEXT NOT NULL,
    platform        TEXT NOT NULL,
    display_name    TEXT,
    created_at_ms   BIGINT NOT NULL,
    last_seen_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One row per login of a device: the refresh-token family.
CREATE TABLE device_sessions (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id     TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT,
    revoke_reason TEXT
);
CREATE INDEX device_sessions_by_device ON device_sessions (user_id, device_id);

CREATE TABLE refresh_tokens (
    token_hash    BLOB PRIMARY KEY,
    session_id    BLOB NOT NULL REFERENCES device_sessions(id) ON DELETE CASCADE,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    rotated_at_ms BIGINT
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    algorithm     TEXT NOT NULL,
    private_der   BLOB NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE chat_rooms (
    id            BLOB PRIMARY KEY,
    kind          TEXT NOT NULL,
    title         TEXT,
    -- For direct rooms: the two member ids, sorted, so a pair has one room.
    direct_key    TEXT UNIQUE,
    created_at_ms BIGINT NOT NULL,
    -- Highest sequence number handed out in this room (0 = empty).
    last_seq      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE room_members (
    id            BLOB PRIMARY KEY,
    room_id       BLOB NOT NULL REFERENCES chat_rooms(id) ON DELETE CASCADE,
    user_id       BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    -- Sequence number of the user's latest read marker (0 = nothing read).
    read_seq      BIGINT NOT NULL DEFAULT 0,
    UNIQUE (room_id, user_id)
);
CREATE INDEX room_members_by_user ON room_members (user_id);

CREATE TABLE messages (
    id            BLOB PRIMARY KEY,
    room_id       BLOB NOT NULL REFERENCES chat_rooms(id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    author_id     BLOB NOT NULL REFERENCES users(id),
    device_id     TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    kind          TEXT NOT NULL,
    content       TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (room_id, seq),
    -- Idempotent sends: a retried (author, device, client id) is the same message.
    UNIQUE (room_id, author_id, device_id, client_msg_id)
);
