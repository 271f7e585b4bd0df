-- +goose Up
-- Signing in by email (issue 14) looks users up by lower(email); email is
-- not unique (the login policy refuses an address several users share),
-- so the index is not either.
CREATE INDEX users_email_lower ON users (lower(email));

-- +goose Down
DROP INDEX users_email_lower;
