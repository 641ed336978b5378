package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// postgres is a private PostgreSQL cluster on a loopback port, for
// FerretDB's postgresql handler.
type postgres struct {
	dir  string
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

// pgBinDir finds the directory holding initdb and postgres: flag, PATH,
// or Debian's /usr/lib/postgresql/VERSION/bin (the newest).
func pgBinDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("no PostgreSQL found (initdb not on PATH nor in /usr/lib/postgresql/*/bin); install Debian's postgresql or pass -pg-bin or -pg")
}

// startPostgres initialises a cluster in a new temporary directory and
// starts it on a free loopback port. PostgreSQL refuses to run as root, so
// as root it runs as the "postgres" user the Debian package creates.
// Settings match the MariaDB the tests use: a 256 MB cache and commits
// that do not wait for the log flush (innodb_flush_log_at_trx_commit=2).
func startPostgres(binDir string) (_ *postgres, err error) {
	dir, err := os.MkdirTemp("", "dbbench-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	p := &postgres{dir: dir}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("postgres: running as root needs a user named postgres to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	defer logf.Close()
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(binDir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C")
	initdb.Stdout, initdb.Stderr = logf, logf
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := initdb.Run(); err != nil {
		return nil, fmt.Errorf("postgres: initdb (log in %s): %w", logf.Name(), err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(filepath.Join(binDir, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "shared_buffers=256MB", "-c", "synchronous_commit=off", "-c", "max_connections=200")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("postgres: start: %w", err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(logf.Name())
		if strings.Contains(string(b), "ready to accept connections") {
			break
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("postgres exited at start; log in %s:\n%s", logf.Name(), b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("postgres not ready after 60 s; log in %s", logf.Name())
		}
	}
	p.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", port)
	return p, nil
}

// pid is the postmaster's PID; its children are the per-connection
// backends.
func (p *postgres) pid() int { return p.cmd.Process.Pid }

// stop shuts the cluster down by its PID (SIGINT: fast shutdown) and
// removes its directory.
func (p *postgres) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	_ = os.RemoveAll(p.dir)
}

// freePort is a loopback TCP port nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
