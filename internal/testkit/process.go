package testkit

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Process is a child process a test started in its directory, stopped by
// its PID when the test ends; its output goes to a log whose tail is shown
// when the test fails.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Start runs bin with args and env (nil: this process's) in dir, its
// output appended to dir/name.log.
func Start(t testing.TB, dir, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, f, f, dir
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log (pid %d):\n%s", name, cmd.Process.Pid, p.Tail(4000))
		}
	})
	return p
}

// Stop asks the process to end (SIGTERM) and kills it after 15 s.
func (p *Process) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.Kill()
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Exit waits up to timeout for the process to end by itself and returns
// its exit code; ended is false if it still runs.
func (p *Process) Exit(timeout time.Duration) (code int, ended bool) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// Tail is the last n bytes of the process's log.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// WaitHTTP polls url until it answers 200, failing early if the process
// exits.
func (p *Process) WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	if err := waitHTTP(url, timeout, p.done); err != nil {
		t.Fatalf("%s: %v\n%s", p.Name, err, p.Tail(4000))
	}
}

// WaitReady waits up to 20 s for the node at base to answer /readyz 200.
func WaitReady(t testing.TB, base string) {
	t.Helper()
	if err := waitHTTP(base+"/readyz", 20*time.Second, nil); err != nil {
		t.Fatal(err)
	}
}

func waitHTTP(url string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", url, timeout, last)
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
	return StartRedisWith(t, port, dir)
}

// StartRedisWith is StartRedis with more redis-server options, which
// override the defaults (a later option wins): "--appendonly", "no" keeps
// only the snapshots SAVE writes, so a restart comes back to the last one.
func StartRedisWith(t testing.TB, port int, dir string, options ...string) (stop func()) {
	t.Helper()
	bin := Tool(t, "apt-get install redis-server", "redis-server")
	args := append([]string{"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir, "--save", "", "--appendonly", "yes"}, options...)
	p := Start(t, dir, fmt.Sprintf("redis-%d", port), nil, bin, args...)
	WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	return p.Kill
}
