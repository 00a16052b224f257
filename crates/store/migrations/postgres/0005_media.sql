-- Media (v5, postgres). Keep in step with the other backend's 0005_media.sql.

-- An upload: the bytes live in the object store under media/{id}/, only
-- this reference lives here. A row is written before any object, so a
-- crash between the two leaves a pending row the collector finds.
CREATE TABLE media (
    id             UUID PRIMARY KEY,
    owner_id       UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    -- 'pending' (bytes not in or not processed yet) or 'ready'.
    state          TEXT NOT NULL,
    mime           TEXT,
    -- Bytes the owner is charged for: the declared size while pending,
    -- the stored original's once ready.
    size_bytes     BIGINT NOT NULL,
    -- JSON: what processing learnt (image: width, height, blurhash,
    -- thumbnails; voice: duration_ms, waveform).
    details        TEXT,
    -- A presigned upload's object key, until it is completed.
    upload_key     TEXT,
    created_at_ms  BIGINT NOT NULL,
    ready_at_ms    BIGINT,
    -- Set once, by the message that uses it (a media id backs one message).
    -- (room, device, client_msg_id): the same send retried gets it again.
    room_id        UUID,
    device_id      TEXT,
    client_msg_id  TEXT,
    attached_at_ms BIGINT
);

-- Quota and upload rate per owner.
CREATE INDEX media_by_owner ON media (owner_id, created_at_ms);
-- The collector's scan of uploads no message uses.
CREATE INDEX media_unattached ON media (created_at_ms) WHERE room_id IS NULL;
