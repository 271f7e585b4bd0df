-- +goose Up
-- Pushed authorization requests (RFC 9126, issue 15). A client POSTs its
-- authorization request to /oauth2/par and gets a request_uri that the
-- browser then takes to the authorization endpoint of any instance.
--
-- The row is keyed by the HMAC of the request_uri, never the value itself:
-- a read of this table does not yield a usable request_uri. form is the
-- checked authorization request as a URL-encoded form, without the client's
-- credentials (client_secret, client_assertion are removed before storing).
-- A row is deleted when it is redeemed (single use: a conditional DELETE
-- that only one of two racing redemptions wins) and by the janitor once it
-- expired. Deleting the client deletes what it pushed.
CREATE TABLE pushed_requests (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    form        TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX pushed_requests_expires_at_idx ON pushed_requests (expires_at);
CREATE INDEX pushed_requests_client_id_idx ON pushed_requests (client_id);

-- require_pushed_authorization_requests (RFC 9126 §6): this client's
-- authorization requests must come through /oauth2/par.
ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE clients DROP COLUMN require_pushed_authorization_requests;
DROP TABLE pushed_requests;
