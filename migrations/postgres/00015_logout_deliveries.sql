-- +goose Up
-- Back-Channel Logout 1.0 (issue 14): the outbox of logout tokens owed to
-- relying parties. A row is written in the transaction that ends a login
-- session (logout, another person signing in, a user's revocation or
-- deletion), so that a crash never loses one; any instance delivers it.
-- The token itself is signed at send time from these claims: a retry hours
-- later gets a fresh exp and the key that signs now, never a token whose
-- key has left the JWKS.
--
-- next_attempt_at is both the schedule and the lease: a claim moves it a
-- lease ahead and stamps claim, so that no other instance takes the row
-- while one is sending it, and a crashed sender's row comes due again.
-- gave_up_at marks a delivery abandoned after its retries; the janitor
-- deletes it later. Deleting the client deletes what it was owed.
CREATE TABLE logout_deliveries (
    id               TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    uri              TEXT NOT NULL,
    subject          TEXT NOT NULL,
    sid              TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    claim            TEXT NOT NULL DEFAULT '',
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    gave_up_at       TIMESTAMPTZ
);
CREATE INDEX logout_deliveries_next_attempt_at_idx ON logout_deliveries (next_attempt_at);
CREATE INDEX logout_deliveries_sid_idx ON logout_deliveries (sid);
CREATE INDEX logout_deliveries_gave_up_at_idx ON logout_deliveries (gave_up_at);
CREATE INDEX logout_deliveries_client_id_idx ON logout_deliveries (client_id);

-- +goose Down
DROP TABLE logout_deliveries;
