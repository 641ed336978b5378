package fees

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// migrations holds the money tables' schema history, one directory per SQL
// dialect; a file's number is its version, the same in both.
//
//go:embed migrations
var migrations embed.FS

// migrationsTable records which versions a database has applied.
const migrationsTable = "fees_schema_version"

// moneyTables are the tables the migrations own, in baseline order.
var moneyTables = []string{"accounts", "transfers", "entries", "outboxes", "dues_policies", "dues_records", "dues_audits",
	"schedules", "schedule_runs", "dues_reminders", "payments", "wallet_pins"}

// Migrate brings the money tables to the newest schema version, applying
// in order each embedded migration the database has not recorded. The
// caller holds the start-up migration lock (sqldb.Migrating), so nodes
// starting together apply each version once.
func (f *Fees) Migrate() error {
	sqlDB, err := f.db.DB()
	if err != nil {
		return fmt.Errorf("fees: migrate: %w", err)
	}
	dialect, dir := goose.DialectSQLite3, "migrations/sqlite"
	var opts []goose.ProviderOption
	if f.db.Dialector.Name() == "mysql" {
		dialect, dir = goose.DialectMySQL, "migrations/mysql"
		opts = append(opts, goose.WithGoMigrations(goose.NewGoMigration(2, &goose.GoFunc{RunDB: toUTF8MB4}, nil)))
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("fees: migrate: %w", err)
	}
	p, err := goose.NewProvider(dialect, sqlDB, sub,
		append(opts, goose.WithTableName(migrationsTable), goose.WithDisableGlobalRegistry(true))...)
	if err != nil {
		return fmt.Errorf("fees: migrate: %w", err)
	}
	if _, err := p.Up(context.Background()); err != nil {
		return fmt.Errorf("fees: migrate: %w", err)
	}
	return nil
}

// keepTextTypes keeps text columns at the baseline's types through a
// conversion, which would otherwise widen each to hold as many four-byte
// characters as it held one-byte ones (text to mediumtext).
var keepTextTypes = map[string]string{
	"outboxes":    ", MODIFY body mediumtext NOT NULL, MODIFY fee text NOT NULL",
	"dues_audits": ", MODIFY detail text NOT NULL",
}

// toUTF8MB4 is MySQL's version 2. Tables created before utf8mb4 was forced
// took the database's default character set (latin1 on MariaDB 10.11), in
// which every Korean name fails to store: they are converted, data and
// all. Then idempotency keys are made byte-wise again (a conversion makes
// them utf8mb4_unicode_ci, under which "KeyA" would replay "keya").
func toUTF8MB4(ctx context.Context, db *sql.DB) error {
	for _, table := range moneyTables {
		var collation string
		if err := db.QueryRowContext(ctx, "SELECT COALESCE(table_collation, '') FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?", table).
			Scan(&collation); err != nil {
			return fmt.Errorf("read %s's collation: %w", table, err)
		}
		if collation == "utf8mb4_unicode_ci" {
			continue
		}
		alter := "ALTER TABLE `" + table + "` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" + keepTextTypes[table]
		if _, err := db.ExecContext(ctx, alter); err != nil {
			return fmt.Errorf("convert %s (%s) to utf8mb4: %w", table, collation, err)
		}
	}
	for _, table := range []string{"transfers", "payments"} {
		var collation string
		if err := db.QueryRowContext(ctx, "SELECT COALESCE(collation_name, '') FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'idem_key'", table).
			Scan(&collation); err != nil {
			return fmt.Errorf("read %s.idem_key's collation: %w", table, err)
		}
		if collation == "ascii_bin" {
			continue
		}
		if _, err := db.ExecContext(ctx, "ALTER TABLE `"+table+"` MODIFY idem_key varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL"); err != nil {
			return fmt.Errorf("make %s.idem_key byte-wise: %w", table, err)
		}
	}
	return nil
}
