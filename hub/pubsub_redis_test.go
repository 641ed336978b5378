package hub

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"moim/chatlog"
)

// testRedis is the real redis-server named by MOIM_TEST_REDIS_URL, which
// `make test` starts (scripts/test.sh).
func testRedis(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv("MOIM_TEST_REDIS_URL")
	if url == "" {
		t.Fatal("MOIM_TEST_REDIS_URL is not set: run `make test`, which starts redis-server, or start one with scripts/services.sh")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("MOIM_TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("MOIM_TEST_REDIS_URL unreachable: %v", err)
	}
	return rdb
}

// collector records what a shard's receive loop delivers; deliveries wait
// while the gate is held, as a busy node falls behind its connection.
type collector struct {
	mu   sync.Mutex
	got  []string
	gate sync.RWMutex
	// then, when set, runs after each delivery, on the receiving goroutine.
	then func(payload string)
}

func (c *collector) deliver(_, payload string) {
	c.gate.RLock()
	defer c.gate.RUnlock()
	c.mu.Lock()
	c.got = append(c.got, payload)
	then := c.then
	c.mu.Unlock()
	if then != nil {
		then(payload)
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// startShard opens a one-shard subscription carrying room 7 and reads it
// into a collector until the test ends.
func startShard(t *testing.T, rdb *redis.Client) (*subscriptions, *collector, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	keys := chatlog.Keys{Prefix: fmt.Sprintf("pubsubtest%d", time.Now().UnixNano()), Shards: 1}
	s := newSubscriptions(rdb, keys, "node-a")
	if err := s.open(ctx); err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.receive(ctx, 0, c.deliver, func(err error) { t.Logf("pub/sub: %v", err) })
	}()
	t.Cleanup(func() {
		cancel()
		s.close()
		<-done
	})
	// add returns once the receive loop reads the confirmation.
	if err := s.add(ctx, 7); err != nil {
		t.Fatal(err)
	}
	return s, c, keys.Channel(7)
}

// TestSubscribedRoomIsLiveAtOnce: once add returns, Redis has the
// subscription, so a message published right after reaches the node; a
// connection counts on that when its frames are read only after its
// rooms' joins (a sync it sends then must miss nothing).
func TestSubscribedRoomIsLiveAtOnce(t *testing.T) {
	rdb := testRedis(t)
	s, c, _ := startShard(t, rdb)
	ctx := context.Background()
	const rooms = 300
	for r := int64(100); r < 100+rooms; r++ {
		if err := s.add(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Publish(ctx, s.keys.Channel(r), strconv.FormatInt(r, 10)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The probe channel's own room 7 marks the end.
	if err := rdb.Publish(ctx, s.keys.Channel(7), "end").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the end mark", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.got) > 0 && c.got[len(c.got)-1] == "end"
	})
	if got := c.count(); got != rooms+1 {
		t.Fatalf("%d of %d messages published right after their room's subscription arrived", got-1, rooms)
	}
}

// publishSeqs publishes "1".."n" on channel in order, in small pipelines,
// calling at(i) after message i.
func publishSeqs(t *testing.T, rdb *redis.Client, channel string, n int, at func(i int)) {
	t.Helper()
	publishRange(t, rdb, channel, 1, n, at)
}

// publishRange publishes "from".."to" on channel as publishSeqs does.
func publishRange(t *testing.T, rdb *redis.Client, channel string, from, n int, at func(i int)) {
	t.Helper()
	ctx := context.Background()
	for i := from; i <= n; {
		pipe := rdb.Pipeline()
		for end := min(i+20, n+1); i < end; i++ {
			pipe.Publish(ctx, channel, strconv.Itoa(i))
			at(i)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// checkSeqs fails unless got is exactly "1".."n" in order.
func checkSeqs(t *testing.T, c *collector, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); c.count() < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a duplicate would arrive by now
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.got {
		if p != strconv.Itoa(i+1) {
			t.Fatalf("delivered message %d is %q, want %d: messages lost, repeated or reordered", i+1, p, i+1)
		}
	}
	if len(c.got) != n {
		t.Fatalf("delivered %d messages, want %d", len(c.got), n)
	}
}

// A shard connection replaced while messages flow and the node is behind
// (messages queued on the old connection, more published after the new
// one subscribed) delivers every message once, in order: the old one is
// drained up to the handover mark instead of being closed with its queue.
func TestResubscribeWhileMessagesFlowMissesNothing(t *testing.T) {
	rdb := testRedis(t)
	s, c, channel := startShard(t, rdb)
	replaced := 0
	s.onResubscribe = func(int, int) { replaced++ }
	const n = 3000
	c.gate.Lock() // the node falls behind from the start
	publishSeqs(t, rdb, channel, n, func(i int) {
		switch i {
		case 1000:
			s.resubscribe(context.Background(), 0, func(err error) { t.Fatal(err) })
		case 1500:
			c.gate.Unlock()
		case 2200:
			// a second handover once the first is done, still mid-stream
			waitFor(t, "the first drain to end", func() bool {
				s.shards[0].mu.Lock()
				defer s.shards[0].mu.Unlock()
				return s.shards[0].prev == nil
			})
			s.resubscribe(context.Background(), 0, func(err error) { t.Fatal(err) })
		}
	})
	checkSeqs(t, c, n)
	if replaced != 2 {
		t.Fatalf("%d resubscribes, want 2", replaced)
	}
}

// A shard connection that silently stops carrying anything (here its
// channels are unsubscribed from under it) is replaced by the probe, and
// the messages published after that are delivered.
func TestSilentShardIsReplaced(t *testing.T) {
	rdb := testRedis(t)
	s, c, channel := startShard(t, rdb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	replaced := make(chan struct{}, 1)
	s.onResubscribe = func(int, int) { replaced <- struct{}{} }
	go s.probe(ctx, 20*time.Millisecond, func(err error) { t.Logf("probe: %v", err) })

	publishSeqs(t, rdb, channel, 10, func(int) {})
	checkSeqs(t, c, 10)
	s.shards[0].mu.Lock()
	err := s.shards[0].ps.subscribe(ctx, []string{s.keys.Probe(0), channel}, false)
	s.shards[0].mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-replaced:
	case <-time.After(10 * time.Second):
		t.Fatal("the silent shard was not resubscribed")
	}
	waitFor(t, "the silent connection to be given up", func() bool {
		s.shards[0].mu.Lock()
		defer s.shards[0].mu.Unlock()
		return s.shards[0].prev == nil
	})
	c.mu.Lock()
	c.got = nil
	c.mu.Unlock()
	publishSeqs(t, rdb, channel, 10, func(int) {})
	checkSeqs(t, c, 10)
}

// When the old connection fails during its drain, after delivering some
// of what the new one also carries, the new one's messages from before
// the mark are delivered from past the last one delivered: nothing twice,
// nothing published after the switch missed. The handover is made by hand
// here so that messages are published between the new subscription and
// the mark.
func TestOldConnectionFailingMidDrainRepeatsNothing(t *testing.T) {
	rdb := testRedis(t)
	s, c, channel := startShard(t, rdb)
	ctx := context.Background()
	sh := s.shards[0]
	c.gate.Lock()
	publishRange(t, rdb, channel, 1, 100, func(int) {}) // only the old connection carries these
	ps, err := s.subscribe(ctx, 0, map[int64]struct{}{7: {}})
	if err != nil {
		t.Fatal(err)
	}
	sh.mu.Lock()
	old := sh.ps
	sh.set(ps, old)
	sh.mark = "node-a/handover/test"
	sh.mu.Unlock()
	publishRange(t, rdb, channel, 101, 200, func(int) {}) // both carry these
	c.mu.Lock()
	c.then = func(p string) {
		if p == "150" {
			_ = old.close() // the old connection fails before its mark
		}
	}
	c.mu.Unlock()
	if err := rdb.Publish(ctx, s.keys.Probe(0), "node-a/handover/test").Err(); err != nil {
		t.Fatal(err)
	}
	publishRange(t, rdb, channel, 201, 300, func(int) {}) // past the mark
	c.gate.Unlock()
	checkSeqs(t, c, 300)
}

// On a single Redis the rooms of all persistence shards share the node's
// few shard connections (one per core): every room's messages still
// arrive, once each, and a room unsubscribed stops arriving while the
// others on its connection go on.
func TestSubscriptionsShareConnections(t *testing.T) {
	rdb := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	keys := chatlog.Keys{Prefix: fmt.Sprintf("pubsubshare%d", time.Now().UnixNano()), Shards: 16}
	s := newSubscriptions(rdb, keys, "node-a")
	if err := s.open(ctx); err != nil {
		t.Fatal(err)
	}
	if want := min(16, runtime.GOMAXPROCS(0)); len(s.shards) != want {
		t.Fatalf("%d shard connections, want %d (one per core)", len(s.shards), want)
	}
	rooms := make([]int64, 32)
	for i := range rooms {
		rooms[i] = int64(i + 1)
	}
	c := &collector{}
	var done sync.WaitGroup
	for i := range s.shards {
		done.Go(func() {
			s.receive(ctx, i, func(channel, payload string) { c.deliver(channel, channel+" "+payload) },
				func(err error) { t.Logf("pub/sub: %v", err) })
		})
	}
	t.Cleanup(func() {
		cancel()
		s.close()
		done.Wait()
	})
	// add returns once the receive loops read the confirmations.
	if err := s.add(ctx, rooms...); err != nil {
		t.Fatal(err)
	}
	publishAll := func(round string) {
		pipe := rdb.Pipeline()
		for _, r := range rooms {
			pipe.Publish(ctx, keys.Channel(r), round)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	publishAll("1")
	waitFor(t, "a message in each of 32 rooms", func() bool { return c.count() >= len(rooms) })
	if err := s.remove(ctx, rooms[0]); err != nil {
		t.Fatal(err)
	}
	publishAll("2")
	waitFor(t, "the second round in 31 rooms", func() bool { return c.count() >= 2*len(rooms)-1 })
	time.Sleep(50 * time.Millisecond) // a duplicate or the removed room's message would arrive by now
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]int{}
	for _, g := range c.got {
		seen[g]++
	}
	for _, r := range rooms {
		for _, round := range []string{"1", "2"} {
			key := keys.Channel(r) + " " + round
			want := 1
			if r == rooms[0] && round == "2" {
				want = 0
			}
			if seen[key] != want {
				t.Errorf("room %d round %s delivered %d times, want %d", r, round, seen[key], want)
			}
		}
	}
}

// On a single Redis the shard connection is the node's own; when Redis
// drops it, the receive loop dials it again with its channels, and what
// is published from then on arrives, with no resubscribe by the probe.
// Sends meanwhile take go-redis's pipeline (sendConn is nil).
func TestOwnShardConnectionIsDialledAgainAfterADrop(t *testing.T) {
	rdb := testRedis(t)
	s, c, channel := startShard(t, rdb)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	publishSeqs(t, rdb, channel, 10, func(int) {})
	checkSeqs(t, c, 10)
	dropped := s.sendConn(7)
	if dropped == nil {
		t.Fatal("no shard connection of the node's own to send on")
	}
	id, err := dropped.do(ctx, "CLIENT", "ID")
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Do(ctx, "CLIENT", "KILL", "ID", id[0]).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shard connection to be dialled again", func() bool {
		now := s.sendConn(7)
		return now != nil && now != dropped
	})
	c.mu.Lock()
	c.got = nil
	c.mu.Unlock()
	publishSeqs(t, rdb, channel, 10, func(int) {})
	checkSeqs(t, c, 10)
}
