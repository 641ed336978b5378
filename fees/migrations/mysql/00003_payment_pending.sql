-- Reconcile (fees/recover.go) looks for payments left pending by a crash.
-- +goose Up
CREATE INDEX payment_pending ON payments (status, updated_at);
