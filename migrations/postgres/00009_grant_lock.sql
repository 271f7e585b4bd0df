-- +goose Up
-- Rotation and revocation of one grant are serialized by a transaction-scoped
-- advisory lock on the grant (issue 12 item 1). Under READ COMMITTED a
-- revoking UPDATE that waited on the row a rotation had locked re-checks
-- that row only, and never sees the successor the rotation inserted; with
-- both sides taking the grant's lock first, the later one runs its statements
-- with a snapshot that holds everything the earlier one committed.
--
-- latchkey_lock_grants takes the locks of several grants in one fixed order
-- (by lock key), so that subject-wide and session-wide revocations never wait
-- on each other in a cycle. The key space (first argument) is "lkgr".
-- +goose StatementBegin
CREATE FUNCTION latchkey_lock_grants(p_request_ids TEXT[]) RETURNS INTEGER
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k INTEGER;
    n INTEGER := 0;
BEGIN
    FOR k IN SELECT DISTINCT hashtext(id) FROM unnest(p_request_ids) AS id WHERE id IS NOT NULL ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1818978162, k);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
-- +goose StatementEnd

-- latchkey_rotate_refresh is a whole refresh rotation in one round trip: it
-- takes the grant's lock, then retires the old token (only if it is still
-- active and neither its grant nor its subject was revoked), then stores the
-- successor. Each statement of a VOLATILE PL/pgSQL function takes its own
-- snapshot, so the conditional update sees every revocation that committed
-- while this call waited for the lock. It returns false when nothing was
-- rotated: a concurrent rotation won, or the grant was revoked.
-- +goose StatementBegin
CREATE FUNCTION latchkey_rotate_refresh(
    p_old_signature TEXT, p_rotated_at TIMESTAMPTZ, p_successor BYTEA, p_granted_at TIMESTAMPTZ,
    p_signature TEXT, p_request_id TEXT, p_requested_at TIMESTAMPTZ, p_client_id TEXT, p_subject TEXT,
    p_requested_scopes TEXT, p_granted_scopes TEXT, p_requested_audience TEXT, p_granted_audience TEXT,
    p_form_data TEXT, p_session_data TEXT, p_expires_at TIMESTAMPTZ, p_login_session_id TEXT,
    p_access_token_signature TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- The lock of latchkey_lock_grants, inlined: one grant needs no sort,
    -- and this runs on every refresh.
    PERFORM pg_advisory_xact_lock(1818978162, hashtext(p_request_id));
    UPDATE refresh_tokens t SET active = false, rotated_at = p_rotated_at, successor = p_successor
    WHERE t.signature = p_old_signature AND t.request_id = p_request_id AND t.active
      AND NOT EXISTS (SELECT 1 FROM revoked_grants g WHERE g.request_id = t.request_id)
      AND NOT EXISTS (SELECT 1 FROM revoked_subjects s WHERE s.subject = t.subject AND s.revoked_at >= p_granted_at);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO refresh_tokens (signature, request_id, requested_at, client_id, subject, requested_scopes, granted_scopes,
        requested_audience, granted_audience, form_data, session_data, active, expires_at, login_session_id,
        access_token_signature)
    VALUES (p_signature, p_request_id, p_requested_at, p_client_id, p_subject, p_requested_scopes, p_granted_scopes,
        p_requested_audience, p_granted_audience, p_form_data, p_session_data, true, p_expires_at, p_login_session_id,
        p_access_token_signature);
    RETURN true;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION latchkey_rotate_refresh(TEXT, TIMESTAMPTZ, BYTEA, TIMESTAMPTZ, TEXT, TEXT, TIMESTAMPTZ, TEXT, TEXT,
    TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TIMESTAMPTZ, TEXT, TEXT);
DROP FUNCTION latchkey_lock_grants(TEXT[]);
