-- +goose Up
-- The device authorization grant (RFC 8628, issue 16). A device asks
-- /oauth2/device_authorization for a device_code (which it polls the token
-- endpoint with) and a user_code (which a person types on /device).
--
-- Neither code is stored: signature is the HMAC of the device_code,
-- user_code the HMAC of the normalised user code (unique: two live codes
-- must never share one). status moves pending -> approved or denied on the
-- page, approved -> used when the token endpoint redeems it (a conditional
-- UPDATE, so of two redemptions exactly one wins), and approved -> revoked
-- when the login session that approved it ends or its user is revoked.
-- interval_seconds grows by 5 with each slow_down (RFC 8628 §3.5) and is
-- what every instance enforces. On approval the row gets the person
-- (user_id, login_session_id) and session_data, the grant's session as
-- JSON. The janitor deletes rows once expired; a deleted client or user
-- takes its rows along.
CREATE TABLE device_codes (
    signature         TEXT PRIMARY KEY,
    user_code         TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    client_id         TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes            TEXT NOT NULL,
    audience          TEXT NOT NULL,
    status            TEXT NOT NULL,
    interval_seconds  INTEGER NOT NULL,
    user_id           TEXT REFERENCES users (id) ON DELETE CASCADE,
    login_session_id  TEXT,
    session_data      TEXT,
    requested_at      DATETIME NOT NULL,
    expires_at        DATETIME NOT NULL
);
CREATE UNIQUE INDEX device_codes_user_code_idx ON device_codes (user_code);
CREATE INDEX device_codes_expires_at_idx ON device_codes (expires_at);
CREATE INDEX device_codes_request_id_idx ON device_codes (request_id);
CREATE INDEX device_codes_user_id_idx ON device_codes (user_id);
CREATE INDEX device_codes_client_id_idx ON device_codes (client_id);

-- +goose Down
DROP TABLE device_codes;
