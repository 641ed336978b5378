-- A spend may name its receipt, an upload to the room (attachments).
-- +goose Up
ALTER TABLE transfers ADD COLUMN receipt_id text NOT NULL DEFAULT '';
