// Package sqldb opens Moim's relational database: MySQL 8 or MariaDB 10.11
// through GORM when a DSN is configured, otherwise an SQLite file in the
// data directory so a node runs with nothing installed.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	gmysql "gorm.io/driver/mysql"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	// The embedded MongoDB-wire store (FerretDB) already links modernc's
	// pure-Go SQLite under the driver name "sqlite"; GORM reuses it so one
	// SQLite engine serves both and the binary builds with CGO_ENABLED=0.
	_ "modernc.org/sqlite"
)

// OpenMySQL connects to MySQL or MariaDB. The DSN is go-sql-driver's
// format; parseTime and utf8mb4 are forced because Moim stores times and
// Korean text.
func OpenMySQL(dsn string) (*gorm.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["charset"] = "utf8mb4"
	cfg.Collation = "utf8mb4_unicode_ci"
	db, err := gorm.Open(gmysql.New(gmysql.Config{DSNConfig: cfg}), gormConfig())
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	// Bounded so a load spike queues in the pool instead of exhausting the
	// server's max_connections (151 by default) across several nodes.
	sqlDB.SetMaxOpenConns(32)
	sqlDB.SetMaxIdleConns(32)
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	if cfg.DBName != "" {
		if err := defaultUTF8MB4(db, cfg.DBName); err != nil {
			_ = sqlDB.Close()
			return nil, err
		}
	}
	return db, nil
}

// defaultUTF8MB4 makes utf8mb4 the database's default character set, so
// the tables migrations create hold Korean text: a database made with a
// bare CREATE DATABASE takes the server's default (latin1 on MariaDB
// 10.11), and every Korean name would fail to store. Tables created
// earlier keep their character set.
func defaultUTF8MB4(db *gorm.DB, name string) error {
	var charset string
	if err := db.Raw("SELECT @@character_set_database").Scan(&charset).Error; err != nil {
		return fmt.Errorf("sqldb: read the database's character set: %w", err)
	}
	if charset == "utf8mb4" {
		return nil
	}
	quoted := "`" + strings.ReplaceAll(name, "`", "``") + "`"
	if err := db.Exec("ALTER DATABASE " + quoted + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
		return fmt.Errorf("sqldb: database %s defaults to %s, which cannot store Korean text, and changing it failed (%w); "+
			"run ALTER DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci as its owner", name, charset, err, quoted)
	}
	return nil
}

// OpenSQLite opens (creating if needed) moim.db in dir.
func OpenSQLite(dir string) (*gorm.DB, error) {
	// WAL lets readers run beside the writer; immediate transactions and a
	// busy timeout make concurrent writers wait instead of failing.
	dsn := "file:" + filepath.Join(dir, "moim.db") +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate&_time_format=sqlite"
	db, err := gorm.Open(sqlite.Dialector{DriverName: "sqlite", DSN: dsn}, gormConfig())
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(8)
	return db, nil
}

func gormConfig() *gorm.Config {
	return &gorm.Config{
		Logger:  logger.Discard,
		NowFunc: func() time.Time { return time.Now().UTC() },
	}
}

// IsDuplicate reports whether err is a unique-key violation, in MySQL's or
// SQLite's words (GORM's own translation does not know modernc's driver).
func IsDuplicate(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// IsDeadlock reports whether MySQL gave up a transaction to break a
// deadlock (1213) or after waiting for a lock (1205); the transaction can
// be tried again. SQLite, one writer at a time, has no such error.
func IsDeadlock(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// migrateLock names the MySQL lock nodes take around schema migrations.
const migrateLock = "moim_migrate"

// Migrating runs migrate while holding a database-wide lock, so nodes
// starting together on a fresh MySQL database (a swarm's replicas) do not
// race to create the same tables: GORM's AutoMigrate checks, then creates,
// and the loser fails with "table already exists". SQLite belongs to one
// node and needs no lock.
func Migrating(ctx context.Context, db *gorm.DB, wait time.Duration, migrate func() error) error {
	if db.Dialector.Name() != "mysql" {
		return migrate()
	}
	sqlDB, err := db.DB()
	if err != nil {
		return fmt.Errorf("sqldb: migration lock: %w", err)
	}
	// GET_LOCK belongs to a session: hold one connection for the lock while
	// the migrations use the pool.
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqldb: migration lock: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", migrateLock, int(wait.Seconds())).Scan(&got); err != nil {
		return fmt.Errorf("sqldb: migration lock: %w", err)
	}
	if got.Int64 != 1 {
		return fmt.Errorf("sqldb: another node held the migration lock for %s", wait)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", migrateLock)
	return migrate()
}
