-- +goose Up
-- Second factors (issue 17). One row per enrolled factor of a person; kind
-- says which (today 'totp'; passkeys add 'webauthn' rows with their own
-- columns). secret is the factor's secret sealed with AES-256-GCM under a
-- key derived from LATCHKEY_SECRET, the row id as associated data, never in
-- clear. counter is what makes a use single: the last accepted TOTP time
-- step (a WebAuthn signature counter for passkeys), advanced by a
-- conditional UPDATE that only one of two racing submissions wins.
CREATE TABLE user_factors (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    secret        BLOB,
    counter       BIGINT NOT NULL DEFAULT 0,
    created_at    DATETIME NOT NULL,
    last_used_at  DATETIME
);
CREATE INDEX user_factors_user_id_idx ON user_factors (user_id);

-- Single-use recovery codes, stored as their SHA-256 only. Using one
-- deletes its row: a conditional DELETE, so a code works once.
CREATE TABLE recovery_codes (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  DATETIME NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- How the person of a login session authenticated (RFC 8176 amr values,
-- space-separated) and when they last gave a second factor.
ALTER TABLE login_sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE login_sessions ADD COLUMN mfa_time DATETIME;

-- require_mfa: this client's authorization requests need a session with a
-- second factor.
ALTER TABLE clients ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE clients DROP COLUMN require_mfa;
ALTER TABLE login_sessions DROP COLUMN mfa_time;
ALTER TABLE login_sessions DROP COLUMN amr;
DROP TABLE recovery_codes;
DROP TABLE user_factors;
