-- +goose Up
-- Deleting a client cascades to every row that names it (the foreign keys
-- of 00001 and 00003): without an index on client_id each cascade scans the
-- whole token table. pkce_requests.login_session_id is indexed like the
-- other token tables' (00003). (Issue 13 item 4.)
CREATE INDEX access_tokens_client_id_idx ON access_tokens (client_id);
CREATE INDEX refresh_tokens_client_id_idx ON refresh_tokens (client_id);
CREATE INDEX authorization_codes_client_id_idx ON authorization_codes (client_id);
CREATE INDEX pkce_requests_client_id_idx ON pkce_requests (client_id);
CREATE INDEX pkce_requests_login_session_idx ON pkce_requests (login_session_id);
CREATE INDEX consents_client_id_idx ON consents (client_id);

-- +goose Down
DROP INDEX consents_client_id_idx;
DROP INDEX pkce_requests_login_session_idx;
DROP INDEX pkce_requests_client_id_idx;
DROP INDEX authorization_codes_client_id_idx;
DROP INDEX refresh_tokens_client_id_idx;
DROP INDEX access_tokens_client_id_idx;
