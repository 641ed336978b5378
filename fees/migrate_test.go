package fees

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"moim/sqldb"
)

// The migration tests run against the real MariaDB named by
// MOIM_TEST_MYSQL_DSN (server-level, `make test` starts one) and a real
// SQLite file.

// mysqlDatabase creates a database with CREATE DATABASE options ("" takes
// the server's default character set, latin1 on MariaDB 10.11) and
// returns a raw connection to it that runs multi-statement fixtures, and
// its DSN; the database is dropped when the test ends.
func mysqlDatabase(t *testing.T, options string) (*sql.DB, string) {
	t.Helper()
	admin := os.Getenv("MOIM_TEST_MYSQL_DSN")
	if admin == "" {
		t.Fatal("MOIM_TEST_MYSQL_DSN is not set: the migration tests need a real MariaDB; run `make test`, which starts one, or scripts/services.sh")
	}
	cfg, err := mysql.ParseDSN(admin)
	if err != nil {
		t.Fatalf("MOIM_TEST_MYSQL_DSN: %v", err)
	}
	cfg.DBName = ""
	root, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "moim_mig_" + hex.EncodeToString(b)
	if _, err := root.Exec("CREATE DATABASE " + name + options); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := root.Exec("DROP DATABASE " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		_ = root.Close()
	})
	cfg.DBName, cfg.MultiStatements = name, true
	raw, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	cfg.MultiStatements = false
	return raw, cfg.FormatDSN()
}

func openMySQL(t *testing.T, dsn string) *gorm.DB {
	t.Helper()
	db, err := sqldb.OpenMySQL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeGorm(db) })
	return db
}

func openSQLite(t *testing.T, dir string) *gorm.DB {
	t.Helper()
	db, err := sqldb.OpenSQLite(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeGorm(db) })
	return db
}

func closeGorm(db *gorm.DB) {
	if s, err := db.DB(); err == nil {
		_ = s.Close()
	}
}

func migrate(t *testing.T, db *gorm.DB) {
	t.Helper()
	if err := New(db, nil, 1, nil, prometheus.NewRegistry()).Migrate(); err != nil {
		t.Fatal(err)
	}
}

// fixture runs testdata/previous-release-<dialect>.sql, optionally edited.
func fixture(t *testing.T, db *sql.DB, dialect string, edit func(string) string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/previous-release-" + dialect + ".sql")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	if edit != nil {
		s = edit(s)
	}
	if _, err := db.Exec(s); err != nil {
		t.Fatalf("load the previous release's %s database: %v", dialect, err)
	}
}

var autoIncrement = regexp.MustCompile(` AUTO_INCREMENT=\d+`)

// schema describes the money tables: MySQL's SHOW CREATE TABLE (less the
// next id), SQLite's columns and indexes.
func schema(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range moneyTables {
		if db.Dialector.Name() == "mysql" {
			var name, ddl string
			if err := db.Raw("SHOW CREATE TABLE `"+table+"`").Row().Scan(&name, &ddl); err != nil {
				t.Fatalf("show %s: %v", table, err)
			}
			b.WriteString(autoIncrement.ReplaceAllString(ddl, "") + "\n")
			continue
		}
		rows, err := db.Raw("SELECT c.name, c.type, c.\"notnull\", COALESCE(c.dflt_value, ''), c.pk FROM pragma_table_info(?) c ORDER BY c.cid", table).Rows()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var name, typ, dflt string
			var notnull, pk int
			if err := rows.Scan(&name, &typ, &notnull, &dflt, &pk); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s.%s %s notnull=%d default=%q pk=%d\n", table, name, typ, notnull, dflt, pk)
			n++
		}
		_ = rows.Close()
		if n == 0 {
			t.Fatalf("table %s is missing", table)
		}
		var idx []string
		if err := db.Raw("SELECT l.name || ' unique=' || l.\"unique\" || ' (' || (SELECT group_concat(i.name) FROM pragma_index_info(l.name) i) || ')' FROM pragma_index_list(?) l WHERE l.origin = 'c' ORDER BY l.name", table).
			Scan(&idx).Error; err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s indexes %v\n", table, idx)
	}
	return b.String()
}

// checkKept asserts the fixture's rows survived the migrations.
func checkKept(t *testing.T, db *gorm.DB) {
	t.Helper()
	var w Account
	if err := db.Where("kind = ? AND owner_id = ?", KindWallet, 7).Take(&w).Error; err != nil || w.Balance != 50000 {
		t.Fatalf("wallet after the upgrade: %+v, %v", w, err)
	}
	var p Payment
	if err := db.Where("order_id = ?", "moim-0001").Take(&p).Error; err != nil || p.IdemKey != "KeyA" || p.Status != PaymentConfirmed {
		t.Fatalf("payment after the upgrade: %+v, %v", p, err)
	}
	var n int64
	if err := db.Model(&Entry{}).Count(&n).Error; err != nil || n != 2 {
		t.Fatalf("entries after the upgrade: %d, %v", n, err)
	}
}

// TestMigrationsMySQL migrates an empty MariaDB database from zero, and
// upgrades one the previous release (GORM AutoMigrate) created: both end
// with the same schema, and the upgrade keeps the rows.
func TestMigrationsMySQL(t *testing.T) {
	_, freshDSN := mysqlDatabase(t, " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	fresh := openMySQL(t, freshDSN)
	migrate(t, fresh)
	want := schema(t, fresh)

	raw, oldDSN := mysqlDatabase(t, " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	fixture(t, raw, "mysql", nil)
	old := openMySQL(t, oldDSN)
	migrate(t, old)
	migrate(t, old) // a second start applies nothing
	if got := schema(t, old); got != want {
		t.Fatalf("upgraded schema differs from a fresh one:\n%s\nwant:\n%s", got, want)
	}
	checkKept(t, old)
}

// TestMigrationsConvertLatin1Tables upgrades money tables a release before
// utf8mb4 was forced created in a database made with the server's default
// character set (latin1): they end as a fresh database's, keep their rows
// and store Korean text; idempotency keys still compare byte for byte.
func TestMigrationsConvertLatin1Tables(t *testing.T) {
	_, freshDSN := mysqlDatabase(t, " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	fresh := openMySQL(t, freshDSN)
	migrate(t, fresh)
	want := schema(t, fresh)

	raw, oldDSN := mysqlDatabase(t, "") // the server's default character set
	var charset string
	if err := raw.QueryRow("SELECT @@character_set_database").Scan(&charset); err != nil || charset == "utf8mb4" {
		t.Fatalf("the server's default character set is %q (%v); this test needs one that is not utf8mb4", charset, err)
	}
	fixture(t, raw, "mysql", func(s string) string {
		// What that release's AutoMigrate created: no character set of its own.
		s = strings.ReplaceAll(s, " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci", "")
		return strings.ReplaceAll(s, " CHARACTER SET ascii COLLATE ascii_bin", "")
	})
	var collation string
	if err := raw.QueryRow("SELECT table_collation FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'transfers'").Scan(&collation); err != nil || strings.HasPrefix(collation, "utf8mb4") {
		t.Fatalf("fixture's transfers table is %q (%v), want the server's default", collation, err)
	}
	old := openMySQL(t, oldDSN)
	migrate(t, old)
	if got := schema(t, old); got != want {
		t.Fatalf("converted schema differs from a fresh one:\n%s\nwant:\n%s", got, want)
	}
	checkKept(t, old)
	memo := "테니스장 대여 🎾"
	if err := old.Model(&Transfer{}).Where("id = 1").Update("memo", memo).Error; err != nil {
		t.Fatalf("Korean memo in a converted table: %v", err)
	}
	var back Transfer
	if err := old.Take(&back, 1).Error; err != nil || back.Memo != memo {
		t.Fatalf("memo read back %q, %v", back.Memo, err)
	}
	if err := old.Create(&Payment{UserID: 7, IdemKey: "keya", Kind: PaymentTopUp, Provider: "sandbox", OrderID: "moim-0002", Amount: 1, Status: PaymentPending}).Error; err != nil {
		t.Fatalf("key differing from KeyA only in case: %v", err)
	}
}

// TestMigrationsSQLite is TestMigrationsMySQL on SQLite.
func TestMigrationsSQLite(t *testing.T) {
	fresh := openSQLite(t, t.TempDir())
	migrate(t, fresh)
	want := schema(t, fresh)

	old := openSQLite(t, t.TempDir())
	raw, err := old.DB()
	if err != nil {
		t.Fatal(err)
	}
	fixture(t, raw, "sqlite", nil)
	migrate(t, old)
	migrate(t, old)
	if got := schema(t, old); got != want {
		t.Fatalf("upgraded schema differs from a fresh one:\n%s\nwant:\n%s", got, want)
	}
	checkKept(t, old)
}

// TestMigrationsHaveEveryModelColumn: a field added to a money model needs
// a migration (nothing creates columns at start any more); on both
// dialects every model's every column exists after migrating.
func TestMigrationsHaveEveryModelColumn(t *testing.T) {
	_, dsn := mysqlDatabase(t, " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	for name, db := range map[string]*gorm.DB{"mysql": openMySQL(t, dsn), "sqlite": openSQLite(t, t.TempDir())} {
		migrate(t, db)
		for _, model := range []any{&Account{}, &Transfer{}, &Entry{}, &Outbox{}, &DuesPolicy{}, &DuesRecord{}, &DuesAudit{},
			&Schedule{}, &ScheduleRun{}, &DuesReminder{}, &Payment{}, &WalletPIN{}} {
			stmt := &gorm.Statement{DB: db}
			if err := stmt.Parse(model); err != nil {
				t.Fatal(err)
			}
			for _, f := range stmt.Schema.Fields {
				if f.DBName != "" && !db.Migrator().HasColumn(model, f.DBName) {
					t.Errorf("%s: %s.%s has no migration", name, stmt.Schema.Table, f.DBName)
				}
			}
		}
	}
}
