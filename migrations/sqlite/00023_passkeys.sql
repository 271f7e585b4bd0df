-- +goose Up
-- Passkeys (WebAuthn Level 2, issue 17) are user_factors rows of kind
-- 'webauthn'. credential_id is unique across people: a discoverable
-- sign-in finds the passkey (and so the person) by it alone. public_key is
-- the COSE key the assertions verify against; counter (00020) holds the
-- signature counter. backup_eligible/backup_state are the authenticator's
-- BE/BS flags: an eligible credential may be synced to other devices
-- ("swk" rather than "hwk" in amr). name is what the person called it.
ALTER TABLE user_factors ADD COLUMN credential_id BLOB;
ALTER TABLE user_factors ADD COLUMN public_key BLOB;
ALTER TABLE user_factors ADD COLUMN aaguid BLOB;
ALTER TABLE user_factors ADD COLUMN transports TEXT NOT NULL DEFAULT '';
ALTER TABLE user_factors ADD COLUMN attestation_format TEXT NOT NULL DEFAULT '';
ALTER TABLE user_factors ADD COLUMN backup_eligible BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE user_factors ADD COLUMN backup_state BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE user_factors ADD COLUMN name TEXT NOT NULL DEFAULT '';
-- Only passkeys have a credential id (a driver may write a TOTP row's as
-- empty rather than NULL), so only theirs must be unique.
CREATE UNIQUE INDEX user_factors_credential_id_idx ON user_factors (credential_id) WHERE kind = 'webauthn';

-- WebAuthn challenges between the options a page fetches and the
-- credential it posts back: bound to the browser by id (a digest of a
-- cookie's random value), single use (taking one deletes it), short-lived,
-- and in the database so that any instance can finish what another began.
-- data is go-webauthn's SessionData as JSON.
CREATE TABLE webauthn_challenges (
    id          TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL,
    user_id     TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL,
    expires_at  DATETIME NOT NULL
);
CREATE INDEX webauthn_challenges_expires_at_idx ON webauthn_challenges (expires_at);

-- +goose Down
DROP TABLE webauthn_challenges;
DROP INDEX user_factors_credential_id_idx;
DELETE FROM user_factors WHERE kind = 'webauthn';
ALTER TABLE user_factors DROP COLUMN name;
ALTER TABLE user_factors DROP COLUMN backup_state;
ALTER TABLE user_factors DROP COLUMN backup_eligible;
ALTER TABLE user_factors DROP COLUMN attestation_format;
ALTER TABLE user_factors DROP COLUMN transports;
ALTER TABLE user_factors DROP COLUMN aaguid;
ALTER TABLE user_factors DROP COLUMN public_key;
ALTER TABLE user_factors DROP COLUMN credential_id;
