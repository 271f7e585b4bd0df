-- +goose Up
-- Clients registered through the admin API. List-valued metadata is JSON text so
-- that both dialects share one row shape.
CREATE TABLE clients (
    id                          TEXT PRIMARY KEY,
    name                        TEXT NOT NULL DEFAULT '',
    secret_hash                 BLOB,
    redirect_uris               TEXT NOT NULL DEFAULT '[]',
    grant_types                 TEXT NOT NULL DEFAULT '[]',
    response_types              TEXT NOT NULL DEFAULT '[]',
    scopes                      TEXT NOT NULL DEFAULT '[]',
    audience                    TEXT NOT NULL DEFAULT '[]',
    token_endpoint_auth_method  TEXT NOT NULL,
    jwks                        TEXT NOT NULL DEFAULT '',
    jwks_uri                    TEXT NOT NULL DEFAULT '',
    public                      BOOLEAN NOT NULL DEFAULT FALSE,
    trusted                     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                  DATETIME NOT NULL,
    updated_at                  DATETIME NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     DATETIME NOT NULL,
    updated_at     DATETIME NOT NULL
);
CREATE UNIQUE INDEX users_username_idx ON users (username);

-- One table per token kind. "signature" is the SHA-256 of fosite's token
-- signature, never the token: a copy of the database cannot be replayed.
-- "request_id" is the grant and survives refresh-token rotation.
CREATE TABLE access_tokens (
    signature           TEXT PRIMARY KEY,
    request_id          TEXT NOT NULL,
    requested_at        DATETIME NOT NULL,
    client_id           TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject             TEXT NOT NULL DEFAULT '',
    requested_scopes    TEXT NOT NULL DEFAULT '[]',
    granted_scopes      TEXT NOT NULL DEFAULT '[]',
    requested_audience  TEXT NOT NULL DEFAULT '[]',
    granted_audience    TEXT NOT NULL DEFAULT '[]',
    form_data           TEXT NOT NULL DEFAULT '',
    session_data        TEXT NOT NULL,
    active              BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at          DATETIME
);
CREATE INDEX access_tokens_request_id_idx ON access_tokens (request_id);
CREATE INDEX access_tokens_subject_idx ON access_tokens (subject);
CREATE INDEX access_tokens_expires_at_idx ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    signature               TEXT PRIMARY KEY,
    request_id              TEXT NOT NULL,
    requested_at            DATETIME NOT NULL,
    client_id               TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject                 TEXT NOT NULL DEFAULT '',
    requested_scopes        TEXT NOT NULL DEFAULT '[]',
    granted_scopes          TEXT NOT NULL DEFAULT '[]',
    requested_audience      TEXT NOT NULL DEFAULT '[]',
    granted_audience        TEXT NOT NULL DEFAULT '[]',
    form_data               TEXT NOT NULL DEFAULT '',
    session_data            TEXT NOT NULL,
    active                  BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at              DATETIME,
    access_token_signature  TEXT NOT NULL DEFAULT '',
    rotated_at              DATETIME
);
CREATE INDEX refresh_tokens_request_id_idx ON refresh_tokens (request_id);
CREATE INDEX refresh_tokens_subject_idx ON refresh_tokens (subject);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

CREATE TABLE authorization_codes (
    signature           TEXT PRIMARY KEY,
    request_id          TEXT NOT NULL,
    requested_at        DATETIME NOT NULL,
    client_id           TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject             TEXT NOT NULL DEFAULT '',
    requested_scopes    TEXT NOT NULL DEFAULT '[]',
    granted_scopes      TEXT NOT NULL DEFAULT '[]',
    requested_audience  TEXT NOT NULL DEFAULT '[]',
    granted_audience    TEXT NOT NULL DEFAULT '[]',
    form_data           TEXT NOT NULL DEFAULT '',
    session_data        TEXT NOT NULL,
    active              BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at          DATETIME
);
CREATE INDEX authorization_codes_request_id_idx ON authorization_codes (request_id);
CREATE INDEX authorization_codes_expires_at_idx ON authorization_codes (expires_at);

-- PKCE rows are keyed by the authorization code's signature (hashed).
CREATE TABLE pkce_requests (
    signature           TEXT PRIMARY KEY,
    request_id          TEXT NOT NULL,
    requested_at        DATETIME NOT NULL,
    client_id           TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    subject             TEXT NOT NULL DEFAULT '',
    requested_scopes    TEXT NOT NULL DEFAULT '[]',
    granted_scopes      TEXT NOT NULL DEFAULT '[]',
    requested_audience  TEXT NOT NULL DEFAULT '[]',
    granted_audience    TEXT NOT NULL DEFAULT '[]',
    form_data           TEXT NOT NULL DEFAULT '',
    session_data        TEXT NOT NULL,
    active              BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at          DATETIME
);
CREATE INDEX pkce_requests_request_id_idx ON pkce_requests (request_id);
CREATE INDEX pkce_requests_expires_at_idx ON pkce_requests (expires_at);

-- RFC 7523 §3: a client assertion's jti may be used once until it expires.
CREATE TABLE client_assertion_jtis (
    jti         TEXT PRIMARY KEY,
    expires_at  DATETIME NOT NULL
);
CREATE INDEX client_assertion_jtis_expires_at_idx ON client_assertion_jtis (expires_at);

-- +goose Down
DROP TABLE client_assertion_jtis;
DROP TABLE pkce_requests;
DROP TABLE authorization_codes;
DROP TABLE refresh_tokens;
DROP TABLE access_tokens;
DROP TABLE users;
DROP TABLE clients;
