-- +goose Up
-- PostgreSQL announces deny-list rows to every instance here (issue 19
-- item 4). SQLite has no channel and one process, which checks each
-- revocation with the query. The migration exists so that both dialects
-- keep the same version numbers.
SELECT 1;

-- +goose Down
SELECT 1;
