-- +goose Up
-- The account page and e-mailed links (issue 17).
--
-- A login session remembers when it began and what it was begun from (the
-- browser's User-Agent, truncated, and the client address), so that its
-- person can tell their sessions apart on /account. Rows made before this
-- migration take their last sign-in as created_at; created_at stays
-- nullable, since an instance still on the old code may insert rows during
-- a rolling upgrade (NULL reads as "unknown").
ALTER TABLE login_sessions ADD COLUMN created_at TIMESTAMPTZ;
UPDATE login_sessions SET created_at = auth_time;
ALTER TABLE login_sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE login_sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';

-- Single-use links sent by e-mail: a password reset or an address
-- verification. id is the SHA-256 of the token in the link, never the
-- token. purpose is 'reset' or 'verify'; email is the address the link was
-- sent to (a verification proves only that address). used_at is set by the
-- one conditional UPDATE that redeems the link, so of two redemptions at
-- once exactly one wins. The janitor deletes rows once expired; a deleted
-- user takes theirs along.
CREATE TABLE email_tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    email       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose, created_at);
CREATE INDEX email_tokens_expires_at_idx ON email_tokens (expires_at);

-- +goose Down
DROP TABLE email_tokens;
ALTER TABLE login_sessions DROP COLUMN address;
ALTER TABLE login_sessions DROP COLUMN user_agent;
ALTER TABLE login_sessions DROP COLUMN created_at;
