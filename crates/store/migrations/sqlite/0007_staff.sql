-- Staff roles and the moderation audit log (v7, SQLite). Keep in step with migrations/postgres/0007_staff.sql.

-- Who is staff: `moderator` or `admin` (one role per user).
CREATE TABLE staff_roles (
    user_id       BLOB PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    granted_by    BLOB,
    granted_at_ms BIGINT NOT NULL
);

-- Every staff action: who, what, on what, when, why. Append-only, and
-- the database itself refuses changes, not only the code.
CREATE TABLE moderation_audit (
    id          BLOB PRIMARY KEY,
    -- NULL: the command line (`iyagi admin grant`), which has no account.
    actor_id    BLOB,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    note        TEXT,
    at_ms       BIGINT NOT NULL
);
CREATE TRIGGER moderation_audit_no_update BEFORE UPDATE ON moderation_audit
BEGIN SELECT RAISE(ABORT, 'the moderation audit log is append-only'); END;
CREATE TRIGGER moderation_audit_no_delete BEFORE DELETE ON moderation_audit
BEGIN SELECT RAISE(ABORT, 'the moderation audit log is append-only'); END;
