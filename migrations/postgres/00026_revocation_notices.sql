-- +goose Up
-- Every row written to the three deny-lists is announced on the channel the
-- listener already hears (latchkey_invalidate), so that each instance can
-- keep the deny-lists in memory (internal/store/denylist.go) and answer
-- introspection without a query. A trigger rather than a pg_notify beside
-- each INSERT: no write path can forget it (the set-based revocations of
-- logout and account deletion, a future SQL function, an operator's INSERT
-- in psql), and the notice belongs to the writing transaction, so it is
-- delivered on commit and never for a rollback. One notice per row: the
-- payloads (a jti digest, a request ID, a user ID) are a few dozen bytes,
-- far below pg_notify's 8000, and PostgreSQL 13+ folds a transaction's
-- notices in a hash table, so a logout revoking many grants stays linear.
-- UPDATE too: the upserts extend expires_at or move revoked_at, and a row an
-- instance skipped as expired at its load can be extended afterwards.
-- +goose StatementBegin
CREATE FUNCTION latchkey_notify_revoked_jti() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_invalidate', 'revoked-jti:' || NEW.jti);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION latchkey_notify_revoked_grant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_invalidate', 'revoked-grant:' || NEW.request_id);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- The subject's notice carries revoked_at in microseconds since the epoch:
-- a token issued after it is not revoked, and the in-memory check compares
-- as the query does (revoked_at >= iat).
-- +goose StatementBegin
CREATE FUNCTION latchkey_notify_revoked_subject() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_invalidate', 'revoked-subject:' ||
        (extract(epoch FROM NEW.revoked_at) * 1000000)::bigint || ':' || NEW.subject);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER latchkey_revocation_notice AFTER INSERT OR UPDATE ON revoked_jtis
    FOR EACH ROW EXECUTE FUNCTION latchkey_notify_revoked_jti();
CREATE TRIGGER latchkey_revocation_notice AFTER INSERT OR UPDATE ON revoked_grants
    FOR EACH ROW EXECUTE FUNCTION latchkey_notify_revoked_grant();
CREATE TRIGGER latchkey_revocation_notice AFTER INSERT OR UPDATE ON revoked_subjects
    FOR EACH ROW EXECUTE FUNCTION latchkey_notify_revoked_subject();

-- +goose Down
-- Instances of this version find the triggers gone at their next load and
-- check every revocation with the query again (denylist.go).
DROP TRIGGER latchkey_revocation_notice ON revoked_subjects;
DROP TRIGGER latchkey_revocation_notice ON revoked_grants;
DROP TRIGGER latchkey_revocation_notice ON revoked_jtis;
DROP FUNCTION latchkey_notify_revoked_subject();
DROP FUNCTION latchkey_notify_revoked_grant();
DROP FUNCTION latchkey_notify_revoked_jti();
