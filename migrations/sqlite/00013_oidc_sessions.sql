-- +goose Up
-- OpenID Connect sessions (issue 14).
--
-- sid is the login session's public identifier: the "sid" claim of ID
-- tokens and of back-channel logout tokens (Front- and Back-Channel Logout
-- 1.0 §2). The primary key is the SHA-256 of the cookie and changes when the
-- same person signs in again (against session fixation); sid stays, so that
-- the ID tokens a relying party already holds keep matching the logout token
-- it will get. Sessions made before this migration take their key as sid.
ALTER TABLE login_sessions ADD COLUMN sid TEXT NOT NULL DEFAULT '';
UPDATE login_sessions SET sid = id;
-- Which client each grant of a login session belongs to: logout sends a
-- logout token to each of them.
ALTER TABLE login_session_grants ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
UPDATE login_session_grants SET client_id = COALESCE(
    (SELECT c.client_id FROM authorization_codes c WHERE c.request_id = login_session_grants.request_id LIMIT 1),
    (SELECT r.client_id FROM refresh_tokens r WHERE r.request_id = login_session_grants.request_id LIMIT 1),
    '');

-- +goose Down
ALTER TABLE login_session_grants DROP COLUMN client_id;
ALTER TABLE login_sessions DROP COLUMN sid;
