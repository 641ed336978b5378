package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// target is one backend under test.
type target struct {
	name    string
	about   string // server version and where
	cpuNote string // what the server CPU column measures
	b       backend
	cpu     cpuMeter
	disk    func(ctx context.Context) (diskUse, error)
	close   func(drop bool) error
}

// diskUse is what the stored messages take.
type diskUse struct {
	Rows      int64
	Data      int64
	Index     int64
	Source    string
	Files     int64 // 0: not on this host
	FilesWhat string
}

// targetNames lists the backends o asks for, in the order they run.
func targetNames(o *config) []string {
	var n []string
	if o.mysqlDSN != "" {
		n = append(n, "mysql")
	}
	if o.mongoURI != "" {
		n = append(n, "mongodb")
	}
	for _, h := range o.ferret {
		if h == "pg" {
			h = "postgresql"
		}
		n = append(n, "ferretdb-"+h)
	}
	return n
}

func openTarget(ctx context.Context, name string, o *config) (*target, error) {
	switch name {
	case "mysql":
		return openMySQLTarget(ctx, o)
	case "mongodb":
		t, err := openMongoTarget(ctx, name, o.mongoURI, o.dbName)
		if err != nil {
			return nil, err
		}
		t.cpu.serverPID = o.mongoPID
		t.cpuNote = serverNote(o.mongoPID, "pass -mongo-pid")
		return t, nil
	case "ferretdb-sqlite":
		return openFerretSQLite(ctx, o)
	case "ferretdb-postgresql":
		return openFerretPG(ctx, o)
	}
	return nil, fmt.Errorf("unknown backend %q", name)
}

func serverNote(pid int, hint string) string {
	if pid <= 0 {
		return "server CPU not measured (" + hint + ")"
	}
	return fmt.Sprintf("server CPU: %s, PID %d and its children (/proc)", procComm(pid), pid)
}

func procComm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func openMySQLTarget(ctx context.Context, o *config) (*target, error) {
	s, closeFn, err := openMySQL(ctx, o.mysqlDSN, o.dbName, o.conc+2)
	if err != nil {
		return nil, err
	}
	version, pid := s.describe(ctx)
	hint := "the server's pid file is not on this host; pass -mysql-pid"
	if o.mysqlPID > 0 {
		pid = o.mysqlPID
	}
	cfg, _ := mysql.ParseDSN(o.mysqlDSN)
	return &target{
		name:    "mysql",
		about:   fmt.Sprintf("%s at %s, database %s", version, cfg.Addr, o.dbName),
		cpuNote: serverNote(pid, hint),
		b:       s,
		cpu:     cpuMeter{serverPID: pid},
		disk: func(ctx context.Context) (diskUse, error) {
			d, err := s.disk(ctx, o.dbName)
			if err != nil {
				return d, err
			}
			err = s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM messages").Scan(&d.Rows)
			return d, err
		},
		close: closeFn,
	}, nil
}

// openMongoTarget opens Moim's store on uri; the caller fills in the CPU
// meter and its note.
func openMongoTarget(ctx context.Context, name, uri, db string) (*target, error) {
	mt, err := openMongo(ctx, uri, db)
	if err != nil {
		return nil, err
	}
	return &target{
		name:  name,
		about: mt.version(ctx) + ", database " + db,
		b:     mt.store,
		disk:  mt.disk,
		close: mt.close,
	}, nil
}

func openFerretSQLite(ctx context.Context, o *config) (*target, error) {
	dir, temp := o.dir, false
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "dbbench-ferretdb-"); err != nil {
			return nil, fmt.Errorf("ferretdb: %w", err)
		}
		temp = true
	}
	cleanup := func(drop bool) {
		if temp && drop {
			_ = os.RemoveAll(dir)
		}
	}
	f, err := startFerret("sqlite", dir, "")
	if err != nil {
		cleanup(true)
		return nil, err
	}
	t, err := openMongoTarget(ctx, "ferretdb-sqlite", f.uri, o.dbName)
	if err != nil {
		f.stop()
		cleanup(true)
		return nil, err
	}
	t.about += ", SQLite files in " + dir
	t.cpuNote = "FerretDB and SQLite run inside this process: their CPU is in the bench column"
	disk := t.disk
	t.disk = func(ctx context.Context) (diskUse, error) {
		d, err := disk(ctx)
		if err != nil {
			return d, err
		}
		d.Files, err = dirSize(dir)
		d.FilesWhat = "SQLite database, WAL and shm files"
		return d, err
	}
	closeStore := t.close
	t.close = func(drop bool) error {
		err := closeStore(drop)
		f.stop()
		cleanup(drop)
		return err
	}
	return t, nil
}

func openFerretPG(ctx context.Context, o *config) (*target, error) {
	url, pid, where := o.pgURL, o.pgPID, "PostgreSQL at -pg"
	var pg *postgres
	if url == "" {
		bin, err := pgBinDir(o.pgBin)
		if err != nil {
			return nil, err
		}
		if pg, err = startPostgres(bin); err != nil {
			return nil, err
		}
		url, pid, where = pg.url, pg.pid(), "private PostgreSQL ("+bin+") in "+pg.dir
	}
	stopPG := func() {
		if pg != nil {
			pg.stop()
		}
	}
	f, err := startFerret("postgresql", "", url)
	if err != nil {
		stopPG()
		return nil, err
	}
	t, err := openMongoTarget(ctx, "ferretdb-postgresql", f.uri, o.dbName)
	if err != nil {
		f.stop()
		stopPG()
		return nil, err
	}
	t.about += ", " + where
	t.cpu.serverPID = pid
	t.cpuNote = serverNote(pid, "pass -pg-pid") + "; FerretDB itself runs in this process (bench column)"
	closeStore := t.close
	t.close = func(drop bool) error {
		err := closeStore(drop)
		f.stop()
		stopPG()
		return err
	}
	return t, nil
}
