package main

import (
	"context"
	"strings"
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
	rdb, _, err := dialRedis(url, "test")
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

// A node's Redis connections carry its name (MOIM_NODE_ID), so an
// operator reading CLIENT LIST sees which node holds which: the pooled
// ones and the pub/sub connections alike, the shards' own among them,
// even for a name Redis would refuse as it is (a space).
func TestNodesRedisConnectionsAreNamedForIt(t *testing.T) {
	cfg := testConfig(t)
	cfg.NodeID = "club node " + randomName("")
	startTestNode(t, cfg)
	want := " name=" + clientName(cfg.NodeID) + " "
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	// The membership channel is one subscribed connection; each pub/sub
	// shard (at least one) is another.
	var pooled, subscribed int
	eventually(t, "the node's named connections", func() bool {
		list, err := rdb.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		pooled, subscribed = 0, 0
		for line := range strings.Lines(list) {
			if !strings.Contains(line, want) {
				continue
			}
			if strings.Contains(line, " sub=0 ") {
				pooled++
			} else {
				subscribed++
			}
		}
		return pooled >= 1 && subscribed >= 2
	})
}
