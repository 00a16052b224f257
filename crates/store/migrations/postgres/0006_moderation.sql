-- Reports and the analysis event log (v6, postgres). Keep in step with the other backend's 0006.

-- One report per (reporter, target): reporting again updates it. The
-- target is an open set (message, user, room; later post, comment...).
CREATE TABLE reports (
    id            UUID PRIMARY KEY,
    reporter_id   UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    target_type   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    -- The room a message or room target is in (for moderators' context).
    room_id       UUID,
    reason        TEXT NOT NULL,
    details       TEXT,
    -- JSON: what the target looked like when reported (the message with
    -- its context, the profile, the room), kept whatever happens after.
    evidence      TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (reporter_id, target_type, target_id)
);
CREATE INDEX reports_by_target ON reports (target_type, target_id);
CREATE INDEX reports_by_reporter ON reports (reporter_id, updated_at_ms);

-- The analysis event log: appended in the transaction of the change it
-- records (a transactional outbox), never updated. Ids are UUIDv7, so
-- their order is their time order. Payloads never hold message text,
-- passwords or tokens.
CREATE TABLE analysis_events (
    id      UUID PRIMARY KEY,
    kind    TEXT NOT NULL,
    at_ms   BIGINT NOT NULL,
    payload TEXT NOT NULL
);
