package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"moim/chatlog"
	"moim/internal/testkit"
)

// envCluster names a real Redis Cluster (scripts/redis-cluster.sh).
const envCluster = testkit.EnvCluster

// clusterConfig is testConfig on the Redis Cluster from envCluster.
func clusterConfig(t *testing.T) Config {
	t.Helper()
	url := os.Getenv(envCluster)
	if url == "" {
		testkit.Missing(t, "%s is not set: make test starts a Redis Cluster (scripts/redis-cluster.sh)", envCluster)
	}
	cfg := testConfig(t)
	cfg.RedisURL = url
	t.Cleanup(func() { dropRedisPrefix(t, url, cfg.RedisPrefix) })
	return cfg
}

// moveSlot hands the slot holding key to another master the way
// redis-cli --cluster reshard does (IMPORTING/MIGRATING, MIGRATE, NODE).
// Redis drops sharded subscriptions to the slot's channels on the old
// owner: a subscriber that does not notice hears nothing more.
func moveSlot(t *testing.T, url, key string) {
	t.Helper()
	ctx := context.Background()
	rdb, _, err := dialRedis(url, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cc := rdb.(*redis.ClusterClient)
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	type master struct {
		id, host string
		port     int
		c        *redis.Client
	}
	var (
		mu      sync.Mutex
		masters []master
	)
	err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { // in parallel

		id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return err
		}
		host, port, _ := strings.Cut(c.Options().Addr, ":")
		var p int
		fmt.Sscan(port, &p)
		mu.Lock()
		masters = append(masters, master{id, host, p, redis.NewClient(&redis.Options{Addr: c.Options().Addr})})
		mu.Unlock()
		return nil
	})
	if err != nil || len(masters) < 2 {
		t.Fatalf("cluster masters: %v (%d)", err, len(masters))
	}
	defer func() {
		for _, m := range masters {
			m.c.Close()
		}
	}()
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var owner string
	for _, r := range slots {
		if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
			owner = r.Nodes[0].ID
		}
	}
	var from, to master
	for _, m := range masters {
		if m.id == owner {
			from = m
		} else if to.c == nil {
			to = m
		}
	}
	if from.c == nil {
		t.Fatalf("no owner found for slot %d", slot)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("move slot %d: %v", slot, err)
		}
	}
	must(to.c.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", from.id).Err())
	must(from.c.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", to.id).Err())
	for {
		keys, err := from.c.Do(ctx, "CLUSTER", "GETKEYSINSLOT", slot, 100).StringSlice()
		must(err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", to.host, to.port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(from.c.Do(ctx, args...).Err())
	}
	for _, m := range masters {
		must(m.c.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to.id).Err())
	}
}

// TestClusterSilentShardIsResubscribed moves a room's slot to another
// master under a live node. Its sharded subscription stays connected but
// delivers nothing; the node's probe notices and resubscribes, and the
// room's messages flow again without anyone reconnecting.
func TestClusterSilentShardIsResubscribed(t *testing.T) {
	cfg := clusterConfig(t)
	n := startTestNode(t, cfg)
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	wa, wb := n.connect(alice), n.connect(bob)
	wa.say(room.ID, "before", "before the move")
	if m := wb.await("msg"); m.Body != "before the move" {
		t.Fatalf("got %+v", m)
	}
	if status, _ := n.anon(t).raw("GET", "/readyz", nil); status != 200 {
		t.Fatalf("/readyz %d before the move", status)
	}
	keys := chatlog.Keys{Prefix: cfg.RedisPrefix, Shards: cfg.StreamShards}
	moveSlot(t, cfg.RedisURL, keys.Channel(room.ID))

	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		wa.say(room.ID, fmt.Sprint("after-", i), fmt.Sprint("after ", i))
		f, err := wb.read(300 * time.Millisecond)
		for err == nil && f.Type != "msg" {
			f, err = wb.read(300 * time.Millisecond)
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the room stayed silent after its slot moved")
		}
	}
	if got := metricValue(t, n, "moim_hub_pubsub_resubscribes_total"); got < 1 {
		t.Fatalf("delivery resumed but no resubscribe was counted (%v)", got)
	}
	eventually(t, "/readyz to pass again", func() bool {
		status, _ := n.anon(t).raw("GET", "/readyz", nil)
		return status == 200
	})
	// Messages sent while the shard was silent were acked and stored in
	// Redis; a sync brings every one of them.
	wb.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room.ID): 1}})
	if s := wb.await("synced"); s.Seq < 2 {
		t.Fatalf("synced %+v", s)
	}
}
