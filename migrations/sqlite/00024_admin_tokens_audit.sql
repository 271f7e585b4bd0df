-- +goose Up
-- Named admin tokens (issue 18). Only the SHA-256 of each token is kept,
-- hex-encoded; the guard looks a presented token up by its hash, one
-- indexed query per admin request, so a revoked (deleted) token stops
-- working on every instance at once.
CREATE TABLE admin_tokens (
    name         TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   DATETIME NOT NULL,
    rotated_at   DATETIME,
    expires_at   DATETIME
);
-- The audit log of admin changes: who, what, when, and the target before
-- and after as JSON without secrets. id orders it (newest first) and is
-- the cursor of GET /admin/audit.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           DATETIME NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    request_id   TEXT NOT NULL DEFAULT '',
    before       TEXT,
    after        TEXT
);
-- since= and the janitor's purge read by time; actor= and target= by
-- their columns, newest first.
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, id);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE admin_tokens;
