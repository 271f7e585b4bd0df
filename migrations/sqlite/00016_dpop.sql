-- +goose Up
-- DPoP (RFC 9449, issue 15).
--
-- dpop_proofs remembers the proofs already used, so that a proof is accepted
-- once across every instance (§11.1): the key is a hash of the proof's jti
-- scoped by the thumbprint of its key, so one client cannot block another's
-- jti. A row is needed only while its proof's iat is still inside the
-- acceptance window; expires_at says until when, and the janitor deletes it
-- after.
CREATE TABLE dpop_proofs (
    jti        TEXT PRIMARY KEY,
    expires_at DATETIME NOT NULL
);
CREATE INDEX dpop_proofs_expires_at_idx ON dpop_proofs (expires_at);
-- Client metadata dpop_bound_access_tokens (RFC 9449 §5.2): the client
-- gets no token without a proof.
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE clients DROP COLUMN dpop_bound_access_tokens;
DROP TABLE dpop_proofs;
