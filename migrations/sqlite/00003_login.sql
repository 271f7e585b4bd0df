-- +goose Up
-- Browser login sessions. id is the SHA-256 of the cookie value, so a copy
-- of the table cannot be replayed as a cookie.
CREATE TABLE login_sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time     DATETIME NOT NULL,
    last_seen_at  DATETIME NOT NULL,
    expires_at    DATETIME NOT NULL
);
CREATE INDEX login_sessions_user_id_idx ON login_sessions (user_id);
CREATE INDEX login_sessions_expires_at_idx ON login_sessions (expires_at);

-- Consent remembered per user and client: the scopes the user agreed to.
CREATE TABLE consents (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL DEFAULT '[]',
    updated_at  DATETIME NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Failed-login counters per username and per client IP, shared by every
-- instance.
CREATE TABLE login_failures (
    key           TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    window_start  DATETIME NOT NULL,
    locked_until  DATETIME
);
CREATE INDEX login_failures_window_start_idx ON login_failures (window_start);

-- Every token issued before revoked_at to this subject is revoked: how a
-- password change or an admin revocation reaches stateless JWTs.
CREATE TABLE revoked_subjects (
    subject     TEXT PRIMARY KEY,
    revoked_at  DATETIME NOT NULL
);

-- Grants remember the login session they were issued under, so logout can
-- revoke them.
ALTER TABLE authorization_codes ADD COLUMN login_session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE access_tokens ADD COLUMN login_session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN login_session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE pkce_requests ADD COLUMN login_session_id TEXT NOT NULL DEFAULT '';
CREATE INDEX authorization_codes_login_session_idx ON authorization_codes (login_session_id);
CREATE INDEX access_tokens_login_session_idx ON access_tokens (login_session_id);
CREATE INDEX refresh_tokens_login_session_idx ON refresh_tokens (login_session_id);
CREATE INDEX authorization_codes_subject_idx ON authorization_codes (subject);

ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE clients DROP COLUMN post_logout_redirect_uris;
DROP INDEX authorization_codes_subject_idx;
DROP INDEX refresh_tokens_login_session_idx;
DROP INDEX access_tokens_login_session_idx;
DROP INDEX authorization_codes_login_session_idx;
ALTER TABLE pkce_requests DROP COLUMN login_session_id;
ALTER TABLE refresh_tokens DROP COLUMN login_session_id;
ALTER TABLE access_tokens DROP COLUMN login_session_id;
ALTER TABLE authorization_codes DROP COLUMN login_session_id;
DROP TABLE revoked_subjects;
DROP TABLE login_failures;
DROP TABLE consents;
DROP TABLE login_sessions;
