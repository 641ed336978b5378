package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestConnectionCapRefusesUpgrades: past MOIM_MAX_CONNS an upgrade gets
// 503 with Retry-After before the handshake and /readyz says the node is
// full, until a connection closes.
func TestConnectionCapRefusesUpgrades(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConns = 3
	n := startTestNode(t, cfg)
	alice := n.user(t, "Alice")
	ws1 := n.connect(alice)
	n.connect(alice)
	n.connect(alice)

	req, _ := http.NewRequest("GET", n.url+"/ws", nil)
	req.Header.Set("Authorization", "Bearer "+alice.token)
	for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a fourth upgrade at a cap of 3: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	status, raw := n.anon(t).raw("GET", "/readyz", nil)
	var ready struct {
		Checks map[string]string `json:"checks"`
	}
	_ = json.Unmarshal(raw, &ready)
	if status != 503 || !strings.HasPrefix(ready.Checks["connections"], "full") {
		t.Fatalf("/readyz of a full node: %d %s", status, raw)
	}
	ws1.conn.Close()
	eventually(t, "the node to take connections again", func() bool {
		s, _ := n.anon(t).raw("GET", "/readyz", nil)
		return s == 200
	})
	n.connect(alice)
}

// TestNodeChildProcess is the node TestNodeSurvivesRunningOutOfDescriptors
// starts in a child process with a low RLIMIT_NOFILE.
func TestNodeChildProcess(t *testing.T) {
	limit, _ := strconv.ParseUint(os.Getenv("MOIM_TEST_CHILD_NOFILE"), 10, 64)
	if limit == 0 {
		t.Skip("started by TestNodeSurvivesRunningOutOfDescriptors")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatal(err)
	}
	os.Exit(run(nil, os.Getenv, os.Stderr))
}

// TestNodeSurvivesRunningOutOfDescriptors: at the open-file limit accept
// returned EMFILE and the node exited, dropping everyone. Now a node with
// 300 descriptors flooded by 600 connections keeps running, counts the
// failures, and serves again once the flood ends.
func TestNodeSurvivesRunningOutOfDescriptors(t *testing.T) {
	cfg := testConfig(t)
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"MOIM_TEST_CHILD_NOFILE=300",
		"MOIM_ADDR="+addr, "MOIM_DATA_DIR="+cfg.DataDir, "MOIM_REDIS_URL="+cfg.RedisURL, "MOIM_REDIS_PREFIX="+cfg.RedisPrefix,
		"MOIM_MYSQL_DSN="+cfg.MySQLDSN, "MOIM_MONGO_URI="+cfg.MongoURI, "MOIM_JWT_SECRET="+testSecret,
		"MOIM_BCRYPT_COST=4", "MOIM_LOG_LEVEL=warn", "MOIM_NODE_ID=child")
	logf, err := os.Create(t.TempDir() + "/node.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	nodeLog := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	n := &testNode{url: "http://" + addr}
	get := func(path string) (int, string) {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(n.url + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.Status)
		buf := make([]byte, 1<<20)
		k, _ := resp.Body.Read(buf)
		return resp.StatusCode, string(buf[:k])
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s, _ := get("/healthz"); s == 200 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the node exited at start: %v\n%s", err, nodeLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never answered /healthz\n%s", nodeLog())
		}
		time.Sleep(100 * time.Millisecond)
	}

	var flood []net.Conn
	for range 600 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break // the listen backlog is full too
		}
		flood = append(flood, c)
	}
	time.Sleep(2 * time.Second)
	select {
	case err := <-exited:
		t.Fatalf("the node exited under the flood of %d connections: %v\n%s", len(flood), err, nodeLog())
	default:
	}
	for _, c := range flood {
		c.Close()
	}
	eventually(t, "the node to serve again after the flood", func() bool {
		s, _ := get("/healthz")
		return s == 200
	})
	failures := n.metrics(t).Sum("moim_accept_errors_total")
	if failures == 0 {
		t.Fatalf("moim_accept_errors_total is 0 after a flood of %d connections at 300 descriptors", len(flood))
	}
	// The node still does its job: sign up, log in, open a WebSocket.
	u := n.user(t, "After")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, _, err := ws.Dial(ctx, n.wsURL()+"?token="+u.token)
	if err != nil {
		t.Fatalf("WebSocket after the flood: %v\n%s", err, nodeLog())
	}
	c.Close()
	t.Logf("%d flood connections; %v accept errors retried", len(flood), failures)
}

// TestUpgradeSlotsOnePerCoreOnTheZeroSetupNode: the zero-setup node,
// whose upgrades wait on nothing but its CPU, works on one upgrade per
// core at once; a node on Redis or MariaDB keeps the hub's default (more
// per core), as its upgrades wait on the network (docs/BENCHMARKS.md,
// "Connection storms", session 20).
func TestUpgradeSlotsOnePerCoreOnTheZeroSetupNode(t *testing.T) {
	zero := &node{cfg: Config{DataDir: t.TempDir()}}
	if got, want := zero.upgradeSlots(), runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("zero-setup node: %d upgrade slots, want GOMAXPROCS = %d", got, want)
	}
	for _, cfg := range []Config{{RedisURL: "redis://127.0.0.1:1/0"}, {MySQLDSN: "moim:moim@tcp(127.0.0.1:1)/"}} {
		if got := (&node{cfg: cfg}).upgradeSlots(); got != 0 {
			t.Fatalf("node with %+v: %d upgrade slots, want 0 (the hub's default)", cfg, got)
		}
	}
}
