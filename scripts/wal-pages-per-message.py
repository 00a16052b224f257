#!/usr/bin/env python3
"""How many WAL pages one batch of appends dirties, on a copy of an iyagi
SQLite database (for example /tmp/iyagi-bench/iyagi.db after a pairs run).

Replays the statements of the message writer (insert, room counters, the
author's read position) for one message in each of N rooms, in one
transaction, and counts the WAL frames the commit wrote. Never point it at
a live database: it appends test messages.

    sqlite3 /tmp/iyagi-bench/iyagi.db ".backup /tmp/copy.db"
    scripts/wal-pages-per-message.py /tmp/copy.db 1 10 100
"""
import os
import random
import sqlite3
import sys


def pages_for(db, rooms_in_batch):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    c.execute("PRAGMA foreign_keys=ON")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = c.execute("PRAGMA page_size").fetchone()[0]
    rooms = [r[0] for r in c.execute(
        "SELECT id FROM chat_rooms ORDER BY random() LIMIT ?", (rooms_in_batch,))]
    c.execute("BEGIN IMMEDIATE")
    for room in rooms:
        author = c.execute(
            "SELECT user_id FROM room_members WHERE room_id = ? LIMIT 1", (room,)).fetchone()[0]
        last_seq, count = c.execute(
            "SELECT last_seq, content_count FROM chat_rooms WHERE id = ?", (room,)).fetchone()
        c.execute(
            "INSERT INTO messages (id, room_id, seq, author_id, device_id, client_msg_id, kind, "
            "content, created_at_ms, content_ordinal) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (os.urandom(16), room, last_seq + 1, author, "probe", "probe-%d" % random.getrandbits(48),
             "text", '{"text":"a message of ordinary length for the probe"}', 1764000000000, count + 1))
        c.execute(
            "UPDATE chat_rooms SET last_seq = ?, content_count = ?, last_content_seq = ?, "
            "last_activity_ms = last_activity_ms + 1 WHERE id = ?",
            (last_seq + 1, count + 1, last_seq + 1, room))
        c.execute(
            "UPDATE room_members SET read_seq = ?, read_count = ? "
            "WHERE room_id = ? AND user_id = ? AND read_seq < ?",
            (last_seq + 1, count + 1, room, author, last_seq + 1))
    c.execute("COMMIT")
    # 32-byte WAL header, then one 24-byte header + one page per frame.
    frames = (os.path.getsize(db + "-wal") - 32) // (page_size + 24)
    c.close()
    return len(rooms), frames


def main():
    db = sys.argv[1]
    for n in [int(a) for a in sys.argv[2:]] or [1, 10, 100]:
        rooms, frames = pages_for(db, n)
        print(f"rooms={rooms} pages={frames} per_message={frames / max(rooms, 1):.2f}")


if __name__ == "__main__":
    main()
