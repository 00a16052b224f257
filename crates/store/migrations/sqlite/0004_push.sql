-- Push notifications (v4, SQLite). Keep in step with migrations/postgres/0004_push.sql.

-- Where a device can be reached: one registration per (device, provider).
-- Deleted with its device, when its session is revoked, and when the
-- provider says the token is dead.
CREATE TABLE push_registrations (
    user_id       BLOB NOT NULL,
    device_id     TEXT NOT NULL,
    provider      TEXT NOT NULL,
    -- FCM registration token, APNs device token, or the Web Push endpoint.
    token         TEXT NOT NULL,
    -- APNs: the app's bundle id (apns-topic).
    topic         TEXT,
    -- Web Push: the subscription's keys.
    p256dh        BLOB,
    auth          BLOB,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, provider),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);

-- The notification store: append-only, never updated.
CREATE TABLE notifications (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    room_id       BLOB,
    message_id    BLOB,
    author_id     BLOB,
    seq           BIGINT,
    payload       TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
) WITHOUT ROWID; -- the rows live in the id b-tree: no separate rowid table
-- Ids are UUIDv7: in id order is in time order, so retention deletes by
-- id (no index on the time: each index is one more b-tree per insert, and
-- a notification is written for nearly every message).
CREATE INDEX notifications_by_user ON notifications (user_id, id);

-- Each user's read watermark over their notifications (kept apart, so the
-- records are never modified).
CREATE TABLE notification_reads (
    user_id       BLOB PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    read_up_to    BLOB NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- The durable outbox: one row per push still to be sent to a registration.
-- A worker claims due rows for a lease, sends, and deletes them (or
-- reschedules them with backoff). Pushes collapse while they wait: a
-- registration has at most one fresh (never tried, unclaimed) row per
-- collapse key (a room), and a newer notification for it takes that row
-- over (the device would show only the newest of a room anyway); every
-- notification stays in `notifications`.
CREATE TABLE push_deliveries (
    id                 BLOB PRIMARY KEY,
    notification_id    BLOB NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    user_id            BLOB NOT NULL,
    device_id          TEXT NOT NULL,
    provider           TEXT NOT NULL,
    collapse_key       TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NOT NULL,
    claimed_until_ms   BIGINT NOT NULL DEFAULT 0,
    created_at_ms      BIGINT NOT NULL
);
CREATE INDEX push_deliveries_due ON push_deliveries (next_attempt_at_ms);
CREATE UNIQUE INDEX push_deliveries_fresh ON push_deliveries (user_id, device_id, provider, collapse_key)
    WHERE attempts = 0 AND claimed_until_ms = 0;

-- Per-user push preferences.
CREATE TABLE user_preferences (
    user_id       BLOB PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    push_previews BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at_ms BIGINT NOT NULL
);

-- A member's room mute: no pushes for that room until this time (NULL:
-- not muted).
ALTER TABLE room_members ADD COLUMN muted_until_ms BIGINT;
