package main

import (
	"context"
	"flag"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// pass is a backend the server tests run on again after the default
// (Redis) run: make test runs `go test ./server` once per pass.
type pass int

const (
	// onMemory: the single-node engine (MOIM_TEST_ENGINE=memory: no
	// Redis, messages in SQLite).
	onMemory pass = 1 << iota
	// onCluster: a Redis Cluster (MOIM_TEST_REDIS_URL is a
	// redis+cluster:// URL).
	onCluster
)

// passTests are the tests registered for each pass.
var passTests = map[pass][]string{}

// alsoOn registers tests to run again on the passes named. A test that
// matters for another backend says so beside its declaration:
//
//	var _ = alsoOn(onMemory|onCluster, TestSendAckDeliverInOrder)
func alsoOn(passes pass, tests ...func(*testing.T)) bool {
	for _, f := range tests {
		name := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
		name = name[strings.LastIndexByte(name, '.')+1:]
		for _, p := range []pass{onMemory, onCluster} {
			if passes&p != 0 {
				passTests[p] = append(passTests[p], name)
			}
		}
	}
	return true
}

// currentPass is the pass the environment names, or 0 for the default run.
func currentPass() pass {
	switch {
	case os.Getenv(envEngine) == "memory":
		return onMemory
	case strings.Contains(strings.SplitN(os.Getenv(envRedis), "://", 2)[0], "+cluster"):
		return onCluster
	}
	return 0
}

// TestMain narrows a pass's run to the tests registered for it, unless
// -run names tests itself (to run any test on any backend by hand).
func TestMain(m *testing.M) {
	flag.Parse()
	// Tests stop redis-servers under running nodes on purpose, and
	// go-redis logs every failed dial of every pool: thousands of lines
	// that bury the failure a test reports.
	redis.SetLogger(quietRedis{})
	if p := currentPass(); p != 0 && flag.Lookup("test.run").Value.String() == "" {
		names := passTests[p]
		for i, n := range names {
			names[i] = regexp.QuoteMeta(n)
		}
		if err := flag.Set("test.run", "^("+strings.Join(names, "|")+")$"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// quietRedis drops go-redis's own log lines.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
