-- +goose Up
-- PostgreSQL gets the grant lock and the one-round-trip refresh rotation
-- here (issue 12 item 1). SQLite needs neither: BEGIN IMMEDIATE admits one
-- writer, so a rotation and a revocation of the same grant never interleave.
-- The migration exists so that both dialects keep the same version numbers.
SELECT 1;

-- +goose Down
SELECT 1;
