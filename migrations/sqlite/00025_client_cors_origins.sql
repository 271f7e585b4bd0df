-- +goose Up
-- Per-client browser origins for the token, revocation, PAR and device
-- authorization endpoints (issue 18), a JSON list like redirect_uris.
-- NULL, unlike '[]', means none were registered: the origins are then
-- derived from the redirect URIs.
ALTER TABLE clients ADD COLUMN allowed_cors_origins TEXT;

-- +goose Down
ALTER TABLE clients DROP COLUMN allowed_cors_origins;
