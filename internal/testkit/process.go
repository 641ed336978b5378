package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// Process is a child process a test started, stopped by its PID when the
// test ends; its output goes to a log shown when the test fails.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// Start runs bin with args and env (nil: this process's) in the
// background, its output appended to dir/name.log.
func Start(t testing.TB, dir, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, out)
		}
	})
	return p
}

// Kill sends SIGKILL (once) and waits for the process to be gone.
func (p *Process) Kill() {
	p.once.Do(func() { _ = p.cmd.Process.Signal(syscall.SIGKILL) })
	<-p.done
}

// BuildServer builds the server binary (without -race: the process under
// test runs as in production) into a temporary directory.
func BuildServer(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "moim")
	cmd := exec.Command("go", "build", "-o", bin, "moim/server")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build moim/server: %v\n%s", err, out)
	}
	return bin
}

// StartRedis runs a private redis-server on port with its files in dir
// (append-only on, so a restart keeps the data) until the test ends or
// the returned stop is called.
func StartRedis(t testing.TB, port int, dir string) (stop func()) {
	t.Helper()
	bin := Tool(t, "apt-get install redis-server", "redis-server")
	p := Start(t, dir, fmt.Sprintf("redis-%d", port), nil, bin,
		"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir, "--save", "", "--appendonly", "yes")
	WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	return p.Kill
}
