-- +goose Up
-- Which grants were issued under which browser login session, so that
-- logout revokes exactly them (issue 11 item 6). The login_session_id
-- columns of the token tables copy the id from the session JSON, which a
-- rotated refresh token carries over unchanged even after the browser signed
-- in again under a new session; this table is moved to the new session in
-- the same transaction that replaces it. A row is written with the
-- authorization code and kept for as long as the grant can live
-- (created_at plus the code, refresh and access lifetimes; the janitor).
-- No foreign key to login_sessions: the relation outlives an expired session.
CREATE TABLE login_session_grants (
    login_session_id  TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (login_session_id, request_id)
);
CREATE INDEX login_session_grants_created_at_idx ON login_session_grants (created_at);

-- Grants issued before this migration, from the rows that still name them.
INSERT INTO login_session_grants (login_session_id, request_id, created_at)
SELECT login_session_id, request_id, MIN(requested_at) FROM (
    SELECT login_session_id, request_id, requested_at FROM authorization_codes WHERE login_session_id <> ''
    UNION ALL
    SELECT login_session_id, request_id, requested_at FROM access_tokens WHERE login_session_id <> ''
    UNION ALL
    SELECT login_session_id, request_id, requested_at FROM refresh_tokens WHERE login_session_id <> ''
) AS issued
GROUP BY login_session_id, request_id;

-- +goose Down
DROP TABLE login_session_grants;
