package main

import (
	"moim/chatlog"

	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// mysqlSchema is the messages table as Moim would keep it in MySQL: the
// primary key (room_id, seq) clusters a room's messages together and makes
// a replayed batch insert nothing twice, like MongoDB's unique room_seq
// index; room_ts mirrors the Mongo store's second index.
const mysqlSchema = `CREATE TABLE messages (
  room_id  BIGINT NOT NULL,
  seq      BIGINT NOT NULL,
  from_id  BIGINT NOT NULL,
  name     VARCHAR(64) NOT NULL,
  body     TEXT NOT NULL,
  cid      VARCHAR(64) NOT NULL,
  ts       BIGINT NOT NULL,
  reply_to BIGINT NOT NULL DEFAULT 0,
  kind     VARCHAR(16) NOT NULL,
  deleted  BOOLEAN NOT NULL DEFAULT FALSE,
  fee      JSON NULL,
  PRIMARY KEY (room_id, seq),
  KEY room_ts (room_id, ts)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`

const mysqlColumns = "room_id, seq, from_id, name, body, cid, ts, reply_to, kind, deleted, fee"

// mysqlStore is the message store's interface on MySQL or MariaDB.
type mysqlStore struct {
	db *sql.DB
}

// openMySQL creates database name on the server dsn names and the messages
// table in it. Parameters are interpolated client-side so each statement
// is one round trip, as a multi-row INSERT of 1000 rows needs.
func openMySQL(ctx context.Context, dsn, name string, conns int) (*mysqlStore, func(drop bool) error, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("-mysql: %w", err)
	}
	cfg.DBName = ""
	cfg.InterpolateParams = true
	cfg.Collation = "utf8mb4_unicode_ci"
	server, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, nil, fmt.Errorf("mysql: %w", err)
	}
	if _, err := server.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		_ = server.Close()
		return nil, nil, fmt.Errorf("mysql: create database %s: %w", name, err)
	}
	cfg.DBName = name
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err == nil {
		db.SetMaxOpenConns(conns)
		db.SetMaxIdleConns(conns)
		_, err = db.ExecContext(ctx, mysqlSchema)
	}
	closeAll := func(drop bool) error {
		if db != nil {
			_ = db.Close()
		}
		defer server.Close()
		if drop {
			if _, err := server.ExecContext(context.Background(), "DROP DATABASE `"+name+"`"); err != nil {
				return fmt.Errorf("mysql: drop database %s: %w", name, err)
			}
		}
		return nil
	}
	if err != nil {
		_ = closeAll(true)
		return nil, nil, fmt.Errorf("mysql: create table: %w", err)
	}
	return &mysqlStore{db: db}, closeAll, nil
}

// Insert writes msgs with one multi-row INSERT; rows already there (a
// replayed batch) are left as they are.
func (s *mysqlStore) Insert(ctx context.Context, msgs []chatlog.Entry) error {
	if len(msgs) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString("INSERT INTO messages (" + mysqlColumns + ") VALUES ")
	args := make([]any, 0, len(msgs)*11)
	for i := range msgs {
		m := msgs[i].Message
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
		var fee any
		if m.Fee != nil {
			b, err := json.Marshal(m.Fee)
			if err != nil {
				return fmt.Errorf("mysql: encode fee: %w", err)
			}
			fee = string(b)
		}
		args = append(args, m.Room, m.Seq, m.From, m.Name, m.Body, m.CID, m.TS, m.ReplyTo, m.Kind, m.Deleted, fee)
	}
	q.WriteString(" ON DUPLICATE KEY UPDATE seq = seq")
	if _, err := s.db.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("mysql: insert %d messages: %w", len(msgs), err)
	}
	return nil
}

// After is the store's After: seq > after, oldest first.
func (s *mysqlStore) After(ctx context.Context, room, after int64, limit int) ([][]byte, error) {
	return s.find(ctx, "room_id = ? AND seq > ? ORDER BY seq", limit, room, after)
}

// Before is the store's Before: seq < before, newest first.
func (s *mysqlStore) Before(ctx context.Context, room, before int64, limit int) ([][]byte, error) {
	return s.find(ctx, "room_id = ? AND seq < ? ORDER BY seq DESC", limit, room, before)
}

// Search is the store's Search: a case-insensitive substring of the body
// (LIKE under a _ci collation), newest first. A FULLTEXT index would not
// give the same answers: InnoDB's parser indexes whole words of at least
// three characters and MariaDB has no n-gram parser, so the two-syllable
// Korean word inside "회비정산" is never found.
func (s *mysqlStore) Search(ctx context.Context, room int64, q string, limit int) ([][]byte, error) {
	like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q) + "%"
	return s.find(ctx, "room_id = ? AND deleted = FALSE AND body LIKE ? ORDER BY seq DESC", limit, room, like)
}

func (s *mysqlStore) find(ctx context.Context, where string, limit int, args ...any) ([][]byte, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+mysqlColumns+" FROM messages WHERE "+where+" LIMIT "+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("mysql: find: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var m chatlog.Message
		var fee sql.NullString
		if err := rows.Scan(&m.Room, &m.Seq, &m.From, &m.Name, &m.Body, &m.CID, &m.TS, &m.ReplyTo, &m.Kind, &m.Deleted, &fee); err != nil {
			return nil, fmt.Errorf("mysql: read: %w", err)
		}
		if fee.Valid {
			if err := json.Unmarshal([]byte(fee.String), &m.Fee); err != nil {
				return nil, fmt.Errorf("mysql: decode fee: %w", err)
			}
		}
		m.Type = "msg"
		b, err := json.Marshal(&m)
		if err != nil {
			return nil, fmt.Errorf("mysql: encode: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: read: %w", err)
	}
	return out, nil
}

// describe is the server's version and, when it runs on this host (its
// pid file is readable here), its PID.
func (s *mysqlStore) describe(ctx context.Context) (version string, pid int) {
	var pidFile string
	if err := s.db.QueryRowContext(ctx, "SELECT VERSION(), @@pid_file").Scan(&version, &pidFile); err != nil {
		return "?", 0
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return version, 0
	}
	pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil || !strings.Contains(string(comm), "mysqld") && !strings.Contains(string(comm), "mariadbd") {
		return version, 0
	}
	return version, pid
}

// disk is what the messages table takes: InnoDB's data (the clustered
// primary key, rows included) and secondary index pages after ANALYZE
// TABLE refreshed them, and the .ibd file when the data directory is on
// this host.
func (s *mysqlStore) disk(ctx context.Context, name string) (diskUse, error) {
	var d diskUse
	// ANALYZE TABLE answers with a result set; read it to the end.
	rows, err := s.db.QueryContext(ctx, "ANALYZE TABLE messages")
	if err != nil {
		return d, fmt.Errorf("mysql: analyze: %w", err)
	}
	for rows.Next() {
	}
	rows.Close()
	err = s.db.QueryRowContext(ctx, `SELECT data_length, index_length FROM information_schema.tables
		WHERE table_schema = ? AND table_name = 'messages'`, name).Scan(&d.Data, &d.Index)
	if err != nil {
		return d, fmt.Errorf("mysql: table size: %w", err)
	}
	d.Source = "information_schema data_length + index_length"
	var dataDir string
	if err := s.db.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dataDir); err == nil {
		// Not there: the server runs on another host (or in a container).
		if fi, err := os.Stat(filepath.Join(dataDir, name, "messages.ibd")); err == nil {
			d.Files = fi.Size()
			d.FilesWhat = "messages.ibd"
		}
	}
	return d, nil
}
