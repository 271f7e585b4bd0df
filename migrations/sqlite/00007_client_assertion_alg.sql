-- +goose Up
-- The algorithm a private_key_jwt client signs its assertions with
-- (RFC 7591 token_endpoint_auth_signing_alg); empty means "the algorithm
-- of the registered key".
ALTER TABLE clients ADD COLUMN token_endpoint_auth_signing_alg TEXT NOT NULL DEFAULT '';

-- private_key_jwt clients authenticate with their key only; the secrets
-- they were once issued must not work as a second way in.
UPDATE clients SET secret_hash = NULL WHERE token_endpoint_auth_method = 'private_key_jwt';

-- +goose Down
ALTER TABLE clients DROP COLUMN token_endpoint_auth_signing_alg;
