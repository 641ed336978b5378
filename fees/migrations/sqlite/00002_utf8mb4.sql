-- On MariaDB/MySQL this version converts tables created in a latin1
-- database to utf8mb4 (a Go migration, fees/migrate.go). SQLite stores
-- text as UTF-8 and compares it byte for byte already: nothing to do.
-- +goose Up
SELECT 1;
