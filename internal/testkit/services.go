package testkit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// The tests run against real services named by these variables (`make
// test` starts them: scripts/test.sh).
const (
	EnvRedis = "MOIM_TEST_REDIS_URL"
	EnvMySQL = "MOIM_TEST_MYSQL_DSN" // server-level DSN; each test gets its own database
	EnvMongo = "MOIM_TEST_MONGO_URI" // MongoDB or a FerretDB process
	// EnvCluster names a real Redis Cluster (scripts/redis-cluster.sh).
	EnvCluster = "MOIM_TEST_REDIS_CLUSTER_URL"
	// EnvEngine "memory" runs a test's nodes on the single-node engine
	// (no Redis; messages in SQLite).
	EnvEngine = "MOIM_TEST_ENGINE"
)

// RandomName is prefix and 12 random hex digits: a name no other test
// (or earlier run) uses.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// ServiceURL is the service named by env, failing the test when none is:
// these services are what the tests are about, so there is no skipping.
func ServiceURL(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("%s is not set: the tests need a real %s; run `make test`, which starts one, or name yours (README.md, Tests)", env, what)
	}
	return v
}

// CreateDatabase makes a fresh database on the server in adminDSN with
// CREATE DATABASE options ("" takes the server's defaults) and returns a
// DSN for it; the database is dropped when the test ends.
func CreateDatabase(t testing.TB, adminDSN, options string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(adminDSN)
	if err != nil {
		t.Fatalf("%s: %v", EnvMySQL, err)
	}
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("%s: %v", EnvMySQL, err)
	}
	name := RandomName("moim_t_")
	if _, err := admin.Exec("CREATE DATABASE " + name + options); err != nil {
		admin.Close()
		t.Fatalf("%s: create database: %v", EnvMySQL, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// DeleteKeys deletes the keys matching pattern, on every master of a
// cluster, and counts them.
func DeleteKeys(rdb redis.UniversalClient, pattern string) (int, error) {
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

// Redis is a client of the Redis named by MOIM_TEST_REDIS_URL and a key
// prefix of the test's own; the keys under it are deleted and the client
// closed when the test ends.
func Redis(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	opts, err := redis.ParseURL(ServiceURL(t, EnvRedis, "Redis"))
	if err != nil {
		t.Fatalf("%s: %v", EnvRedis, err)
	}
	rdb := redis.NewClient(opts)
	prefix := RandomName("moim_t_")
	t.Cleanup(func() {
		if _, err := DeleteKeys(rdb, prefix+":*"); err != nil {
			t.Errorf("delete the test's keys: %v", err)
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}
