package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"moim/internal/apiclient"
	"moim/internal/testkit"
	"moim/store"
)

// The tests run against real services named by these variables (`make
// test` starts them: scripts/test.sh). A missing or unreachable one fails
// the test; only the zero-setup tests configure a node with none.
const (
	envRedis = testkit.EnvRedis
	envMySQL = testkit.EnvMySQL // server-level DSN; each node gets its own database
	envMongo = testkit.EnvMongo // MongoDB or a FerretDB process (make test starts one); SQLite in the data dir otherwise
	// envEngine "memory" runs a test's nodes on the single-node engine (no
	// Redis; messages in SQLite): the tests registered with alsoOn run
	// that way as well (passes.go).
	envEngine = testkit.EnvEngine
)

const testSecret = "test-secret-test-secret-test-secret-0123456789"

var inCI = testkit.InCI()

func randomName(prefix string) string { return testkit.RandomName(prefix) }

// testConfig is a node's config wired to the test services, with every
// resource (Redis prefix, database, data dir) private to this test.
func testConfig(t *testing.T) Config { return benchConfig(t) }

// benchConfig is testConfig for any testing.TB.
func benchConfig(t testing.TB) Config {
	t.Helper()
	cfg := Config{
		Addr:         "127.0.0.1:0",
		DataDir:      t.TempDir(),
		RedisPrefix:  randomName("t"),
		JWTSecret:    testSecret,
		TokenTTL:     24 * time.Hour,
		NodeID:       "test",
		BcryptCost:   4,
		StreamShards: 4,
		SendRate:     20,
		SendBurst:    40,
		// A loaded test host (-race, other suites) can lag past the
		// default 250ms; only the overload tests ask for busy refusals.
		BusyLag:        time.Minute,
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
	return testkit.ServiceURL(t, env, what)
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
	return testkit.CreateDatabase(t, adminDSN, options)
}

func closeDB(db *gorm.DB) {
	if s, err := db.DB(); err == nil {
		_ = s.Close()
	}
}

func dropRedisPrefix(t testing.TB, url, prefix string) {
	rdb, _, err := dialRedis(url, "test")
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
	return testkit.DeleteKeys(rdb, pattern)
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

// metrics reads the node's /metrics.
func (n *testNode) metrics(t testing.TB) apiclient.Metrics {
	t.Helper()
	return n.anon(t).kit().Metrics()
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
	k := testkit.Signup(t, n.url, name)
	c := &client{t: t, base: n.url, token: k.Token, id: k.ID, username: k.Username}
	signedUp.Store(c.id, c)
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

// kit is c as the shared test client.
func (c *client) kit() *testkit.Client {
	return &testkit.Client{T: c.t, Client: &apiclient.Client{
		Base: c.base, Token: c.token, ID: c.id, Username: c.username, HTTP: c.http, Header: c.header,
	}}
}

// raw sends body (JSON-encoded unless it is a string or []byte) and
// returns the status and the reply.
func (c *client) raw(method, path string, body any) (int, []byte) {
	c.t.Helper()
	return c.kit().Raw(method, path, body)
}

// must fails the test unless the status is want.
func (c *client) must(want int, method, path string, body, out any) {
	c.t.Helper()
	c.kit().Must(want, method, path, body, out)
}

// apiError is the one error shape.
type apiError = apiclient.ErrorBody

// fails asserts a request fails with status and code in the one error
// shape, with a human message and no internals, and returns the message.
func (c *client) fails(status int, code, method, path string, body any) string {
	c.t.Helper()
	return c.kit().Fails(status, code, method, path, body)
}

func urlf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
