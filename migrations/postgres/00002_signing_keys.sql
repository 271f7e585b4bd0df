-- +goose Up
-- Signing keys for JWT access tokens. private_key is the private JWK sealed
-- with AES-256-GCM under a key derived from LATCHKEY_SECRET (the kid is the
-- additional data); the plaintext never reaches the database.
-- A key is published from created_at, signs from activates_at until a newer
-- key activates, and stays published until every token it signed expired.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    alg           TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    private_key   BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    activates_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX signing_keys_activates_at_idx ON signing_keys (activates_at);

-- Revoked JWT access tokens (by jti digest) and revoked grants (by fosite
-- request ID), each kept until the last token it concerns has expired.
CREATE TABLE revoked_jtis (
    jti         TEXT PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX revoked_jtis_expires_at_idx ON revoked_jtis (expires_at);

CREATE TABLE revoked_grants (
    request_id  TEXT PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX revoked_grants_expires_at_idx ON revoked_grants (expires_at);

-- +goose Down
DROP TABLE revoked_grants;
DROP TABLE revoked_jtis;
DROP TABLE signing_keys;
