package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"moim/sqldb"
	"moim/store"
)

// The tests run against real services named by these variables (`make
// test` starts them: scripts/test.sh). A missing or unreachable one fails
// the test; only the zero-setup tests configure a node with none.
const (
	envRedis = "MOIM_TEST_REDIS_URL"
	envMySQL = "MOIM_TEST_MYSQL_DSN" // server-level DSN; each node gets its own database
	envMongo = "MOIM_TEST_MONGO_URI" // MongoDB or a FerretDB process (make test starts one); SQLite in the data dir otherwise
	// envEngine "memory" runs a test's nodes on the single-node engine (no
	// Redis; messages in SQLite): make test runs the hub, sync and history
	// tests that way as well.
	envEngine = "MOIM_TEST_ENGINE"
)

const testSecret = "test-secret-test-secret-test-secret-0123456789"

var inCI = os.Getenv("CI") == "true"

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// testConfig is a node's config wired to the test services, with every
// resource (Redis prefix, database, data dir) private to this test.
func testConfig(t *testing.T) Config { return benchConfig(t) }

// benchConfig is testConfig for any testing.TB.
func benchConfig(t testing.TB) Config {
	t.Helper()
	cfg := Config{
		Addr:           "127.0.0.1:0",
		DataDir:        t.TempDir(),
		RedisPrefix:    randomName("t"),
		JWTSecret:      testSecret,
		TokenTTL:       24 * time.Hour,
		NodeID:         "test",
		BcryptCost:     4,
		StreamShards:   4,
		SendRate:       20,
		SendBurst:      40,
		Roles:          []string{"api", "hub", "batcher"},
		ClaimIdle:      30 * time.Second,
		MirrorCheck:    200 * time.Millisecond,
		ScheduleTick:   100 * time.Millisecond,
		PubSubProbe:    200 * time.Millisecond,
		MaxAmount:      100_000_000,
		Payments:       "sandbox",
		LogLevel:       "warn",
		StartupTimeout: 5 * time.Second,
		LogSync:        store.SyncNormal,
	}
	cfg.MySQLDSN = createDatabase(t, serviceURL(t, envMySQL, "MariaDB/MySQL"))
	if os.Getenv(envEngine) == "memory" {
		return cfg
	}
	cfg.RedisURL = serviceURL(t, envRedis, "redis-server")
	t.Cleanup(func() { dropRedisPrefix(t, cfg.RedisURL, cfg.RedisPrefix) })
	if uri := os.Getenv(envMongo); uri != "" {
		cfg.MongoURI = strings.TrimSuffix(uri, "/") + "/" + randomName("moim_t_")
	}
	return cfg
}

// serviceURL is the service named by env, failing the test when none is.
func serviceURL(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("%s is not set: the tests need a real %s; run `make test`, which starts one, or name yours (README.md, Tests)", env, what)
	}
	return v
}

// createDatabase makes a fresh utf8mb4 database on the server in adminDSN
// and returns a DSN for it; the database is dropped when the test ends.
func createDatabase(t testing.TB, adminDSN string) string {
	return createDatabaseWith(t, adminDSN, " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
}

// createDatabaseWith is createDatabase with CREATE DATABASE options of the
// caller's ("" takes the server's defaults).
func createDatabaseWith(t testing.TB, adminDSN, options string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(adminDSN)
	if err != nil {
		t.Fatalf("%s: %v", envMySQL, err)
	}
	cfg.DBName = ""
	admin, err := sqldb.OpenMySQL(cfg.FormatDSN())
	if err != nil {
		t.Fatalf("%s unreachable: %v", envMySQL, err)
	}
	name := randomName("moim_t_")
	if err := admin.Exec("CREATE DATABASE " + name + options).Error; err != nil {
		t.Fatalf("%s: create database: %v", envMySQL, err)
	}
	t.Cleanup(func() {
		defer closeDB(admin)
		if err := admin.Exec("DROP DATABASE " + name).Error; err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

func closeDB(db *gorm.DB) {
	if s, err := db.DB(); err == nil {
		_ = s.Close()
	}
}

func dropRedisPrefix(t testing.TB, url, prefix string) {
	rdb, _, err := dialRedis(url)
	if err != nil {
		return
	}
	defer rdb.Close()
	if _, err := deleteKeys(rdb, prefix+":*"); err != nil {
		t.Logf("clean redis prefix %s: %v", prefix, err)
	}
}

// deleteKeys deletes the keys matching pattern, on every master of a
// cluster, and counts them.
func deleteKeys(rdb redis.UniversalClient, pattern string) (int, error) {
	ctx := context.Background()
	var mu sync.Mutex
	n := 0
	clean := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
			mu.Lock()
			n++
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, clean)
	case *redis.Client:
		err = clean(ctx, c)
	}
	return n, err
}

// testNode is a node listening on a loopback port.
type testNode struct {
	*node
	url  string
	stop func()
}

// startTestNode starts a node with cfg and stops it when the test ends.
func startTestNode(t *testing.T, cfg Config) *testNode { return startBenchNode(t, cfg) }

// startBenchNode is startTestNode for any testing.TB.
func startBenchNode(t testing.TB, cfg Config) *testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := startNode(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start node: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		cancel()
		n.close()
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.serve(ctx, ln) }()
	var once sync.Once
	tn := &testNode{node: n, url: "http://" + ln.Addr().String()}
	tn.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node stopped with error: %v", err)
			}
		})
	}
	t.Cleanup(tn.stop)
	return tn
}

// testWriter sends node logs to the test log, shown when a test fails.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client calls the REST API as one user.
type client struct {
	t     testing.TB
	base  string
	token string
	id    int64
	// username is set for users made by testNode.user.
	username string
	// http, when set, replaces http.DefaultClient (e.g. to send from
	// another loopback address).
	http *http.Client
	// header is added to every request.
	header http.Header
}

func (n *testNode) anon(t testing.TB) *client { return &client{t: t, base: n.url} }

// user signs up a fresh user and logs them in.
func (n *testNode) user(t testing.TB, name string) *client {
	t.Helper()
	c := n.anon(t)
	username := "u_" + randomName("")
	var u struct{ ID int64 }
	c.must(201, "POST", "/api/auth/signup", map[string]any{"username": username, "password": "password1", "display_name": name}, &u)
	var login struct{ Token string }
	c.must(200, "POST", "/api/auth/login", map[string]any{"username": username, "password": "password1"}, &login)
	c.token, c.id, c.username = login.Token, u.ID, username
	signedUp.Store(u.ID, c)
	return c
}

// signedUp maps a user id to the client last signed up with it. Tests run
// one at a time, each on a fresh database, so that is the current test's.
var signedUp sync.Map

// knows makes each of ids add c as a contact, so that c adds them to a
// room at once instead of inviting them.
func (c *client) knows(ids ...int64) {
	c.t.Helper()
	for _, id := range ids {
		m, ok := signedUp.Load(id)
		if !ok || id == c.id {
			continue
		}
		if status, body := m.(*client).raw("POST", "/api/contacts", map[string]any{"username": c.username}); status != 200 && status != 201 {
			c.t.Fatalf("user %d adds %d as a contact: %d %s", id, c.id, status, body)
		}
	}
}

// raw sends body (JSON-encoded unless it is a string or []byte) and
// returns the status and the reply.
func (c *client) raw(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	hc := http.DefaultClient
	if c.http != nil {
		hc = c.http
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp.StatusCode, raw
}

// must fails the test unless the status is want.
func (c *client) must(want int, method, path string, body, out any) {
	c.t.Helper()
	status, raw := c.raw(method, path, body)
	if status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
}

// apiError is the one error shape.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// fails asserts a request fails with status and code in the one error
// shape, with a human message and no internals, and returns the message.
func (c *client) fails(status int, code, method, path string, body any) string {
	c.t.Helper()
	got, raw := c.raw(method, path, body)
	var e apiError
	if err := json.Unmarshal(raw, &e); err != nil {
		c.t.Fatalf("%s %s: error body is not JSON: %q", method, path, raw)
	}
	if got != status || e.Error.Code != code {
		c.t.Fatalf("%s %s: got %d %q, want %d %q: %s", method, path, got, e.Error.Code, status, code, raw)
	}
	if e.Error.Message == "" || strings.Contains(string(raw), "goroutine") || strings.Contains(string(raw), ".go:") {
		c.t.Fatalf("%s %s: error message empty or leaks internals: %s", method, path, raw)
	}
	return e.Error.Message
}

func urlf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
