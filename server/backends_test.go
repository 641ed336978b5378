package main

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"moim/internal/rawio"
	"moim/internal/testkit"
)

// The node's Redis connections make raw system calls (internal/rawio:
// what keeps the runtime's monitor asleep on the Redis engine), and still
// carry commands.
func TestRedisConnectionsMakeRawCalls(t *testing.T) {
	url := testkit.ServiceURL(t, testkit.EnvRedis, "Redis")
	rdb, _, err := dialRedis(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	opts := rdb.(*redis.Client).Options()
	if opts.Dialer == nil {
		t.Fatal("no dialer of the node's own: go-redis's default one makes runtime system calls")
	}
	conn, err := opts.Dialer(context.Background(), opts.Network, opts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*rawio.Conn); !ok {
		t.Fatalf("the dialer gave a %T, not a *rawio.Conn", conn)
	}
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("a command over the raw connections: %v", err)
	}
}
