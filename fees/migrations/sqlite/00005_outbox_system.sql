-- An outbox event may be a system message (a dues-rule change).
-- +goose Up
ALTER TABLE outboxes ADD COLUMN `system` numeric NOT NULL DEFAULT false;
