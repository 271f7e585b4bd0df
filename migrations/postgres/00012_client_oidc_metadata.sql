-- +goose Up
-- OpenID Connect client metadata (issue 14). Nothing reads them yet: ID
-- tokens and logout come later.
--
-- id_token_signed_response_alg (Dynamic Client Registration §2): RS256,
-- ES256 or EdDSA. Registration stores the RS256 default when the client
-- names none, so that what a relying party was told at registration stays
-- what it gets if the server's default ever changes; clients registered
-- before this column were registered under that same default.
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT 'RS256';
-- Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed (empty:
-- none), and whether they must carry sid.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE clients DROP COLUMN backchannel_logout_session_required;
ALTER TABLE clients DROP COLUMN backchannel_logout_uri;
ALTER TABLE clients DROP COLUMN id_token_signed_response_alg;
