-- A user's room list starts from their memberships (room_members_by_user)
-- and sorts those few rooms by activity; no plan reads chat_rooms in
-- global activity order. The index only cost writes: every message moved
-- its room's entry (one more B-tree page written per message and room on
-- SQLite, and on PostgreSQL it made every counter update a non-HOT one).
DROP INDEX chat_rooms_by_activity;
