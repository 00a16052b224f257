-- Unread counts without scanning messages, and room-list ordering.
-- A room counts its content messages (text/image/voice); each message keeps
-- the room's content count at its position (content_ordinal); each member
-- keeps the content count at their read position (read_count). Unread is
-- then chat_rooms.content_count - room_members.read_count.
ALTER TABLE chat_rooms ADD COLUMN content_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chat_rooms ADD COLUMN last_content_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chat_rooms ADD COLUMN last_activity_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN content_ordinal BIGINT NOT NULL DEFAULT 0;
ALTER TABLE room_members ADD COLUMN read_count BIGINT NOT NULL DEFAULT 0;
UPDATE chat_rooms SET last_activity_ms = created_at_ms;
CREATE INDEX chat_rooms_by_activity ON chat_rooms (last_activity_ms, id);
