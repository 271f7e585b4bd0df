-- +goose Up
-- OpenID Connect Dynamic Client Registration application_type: "web" or
-- "native". Empty for clients registered before it existed: they count as
-- native when every redirect URI is a loopback IP literal or a private-use
-- scheme (RFC 8252 §7), web otherwise.
ALTER TABLE clients ADD COLUMN application_type TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clients DROP COLUMN application_type;
