-- +goose Up
-- A rotated refresh token keeps its successor, sealed under a key derived
-- from the rotated token itself (which the database never holds), so that a
-- repeat inside the grace period gets the same successor and a copy of the
-- database cannot mint tokens. grace_uses bounds the repeats.
ALTER TABLE refresh_tokens ADD COLUMN successor BYTEA;
ALTER TABLE refresh_tokens ADD COLUMN grace_uses INTEGER NOT NULL DEFAULT 0;

-- Security events worth an audit trail, such as refresh token reuse.
CREATE TABLE security_events (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    client_id   TEXT NOT NULL DEFAULT '',
    subject     TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX security_events_created_at_idx ON security_events (created_at);
CREATE INDEX security_events_subject_idx ON security_events (subject);

-- +goose Down
DROP TABLE security_events;
ALTER TABLE refresh_tokens DROP COLUMN grace_uses;
ALTER TABLE refresh_tokens DROP COLUMN successor;
