package deploy

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"moim/internal/testkit"
)

func randomName(prefix string) string { return testkit.RandomName(prefix) }

// createDatabase makes a fresh utf8mb4 database on the server in
// adminDSN, dropped when the test ends, and returns a DSN for it.
func createDatabase(t *testing.T, adminDSN string) string {
	t.Helper()
	return testkit.CreateDatabase(t, adminDSN, " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
}

func dropRedisPrefix(t *testing.T, redisURL, prefix string) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if _, err := testkit.DeleteKeys(rdb, prefix+":*"); err != nil {
		t.Logf("clean redis prefix %s: %v", prefix, err)
	}
}
