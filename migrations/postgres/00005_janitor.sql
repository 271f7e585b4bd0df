-- +goose Up
-- A lease that lets exactly one instance run the janitor at a time.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- The janitor deletes expired rows in small index-driven batches.
CREATE INDEX login_sessions_last_seen_at_idx ON login_sessions (last_seen_at);
CREATE INDEX revoked_subjects_revoked_at_idx ON revoked_subjects (revoked_at);

-- +goose Down
DROP INDEX revoked_subjects_revoked_at_idx;
DROP INDEX login_sessions_last_seen_at_idx;
DROP TABLE leases;
