-- Staff roles and the moderation audit log (v7, PostgreSQL). Keep in step with migrations/sqlite/0007_staff.sql.

-- Who is staff: `moderator` or `admin` (one role per user).
CREATE TABLE staff_roles (
    user_id       UUID PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    granted_by    UUID,
    granted_at_ms BIGINT NOT NULL
);

-- Every staff action: who, what, on what, when, why. Append-only, and
-- the database itself refuses changes, not only the code.
CREATE TABLE moderation_audit (
    id          UUID PRIMARY KEY,
    -- NULL: the command line (`iyagi admin grant`), which has no account.
    actor_id    UUID,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    note        TEXT,
    at_ms       BIGINT NOT NULL
);
CREATE FUNCTION moderation_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the moderation audit log is append-only';
END
$$;
CREATE TRIGGER moderation_audit_no_change BEFORE UPDATE OR DELETE ON moderation_audit
    FOR EACH ROW EXECUTE FUNCTION moderation_audit_append_only();
