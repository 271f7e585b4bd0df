-- +goose Up
-- What the consent page shows (issue 17). scopes: the description of each
-- custom scope, registered through PUT /admin/scopes/{name}; built-in
-- scopes are described by the pages' translated catalogues instead.
CREATE TABLE scopes (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL
);
-- RFC 7591 §2 client metadata: the application's logo and home page,
-- shown on the consent page (empty: none registered).
ALTER TABLE clients ADD COLUMN logo_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN client_uri TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clients DROP COLUMN client_uri;
ALTER TABLE clients DROP COLUMN logo_uri;
DROP TABLE scopes;
