package hub

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"moim/chatlog"
)

// pipelineRoom is a room on the real redis-server (MOIM_TEST_REDIS_URL)
// that the send script takes messages into from users 1..members, with a
// broker whose pipeline runs until the test ends.
func pipelineRoom(t *testing.T, linger time.Duration, members int) (*RedisBroker, *atomic.Int64) {
	t.Helper()
	rdb := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	keys := chatlog.Keys{Prefix: fmt.Sprintf("linger%d", time.Now().UnixNano()), Shards: 1}
	t.Cleanup(func() {
		cancel()
		if found, err := rdb.Keys(context.Background(), keys.Prefix+":*").Result(); err == nil && len(found) > 0 {
			rdb.Del(context.Background(), found...)
		}
	})
	for u := 1; u <= members; u++ {
		if err := rdb.SAdd(ctx, keys.Members(1), u).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.MSet(ctx, keys.Seq(1), 0, keys.SeqHi(1), 1_000_000).Err(); err != nil {
		t.Fatal(err)
	}
	b := NewRedisBroker(rdb, keys, nil, RedisConfig{Linger: linger})
	var trips atomic.Int64
	b.startPipeline(ctx, prometheus.ObserverFunc(func(float64) { trips.Add(1) }))
	return b, &trips
}

// sendOne runs the send script for user's n-th message and wants it
// accepted within 10 s.
func sendOne(t *testing.T, b *RedisBroker, user int64, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := chatlog.NewDraft(1, user, "u", "hello", fmt.Sprintf("c-%d-%d", user, n), chatlog.KindText, 0, time.Now().UnixMilli())
	res, err := b.send(ctx, d, "0")
	if err != nil || res[0] != "ok" {
		t.Errorf("send %d of user %d: %v %v", n, user, res, err)
	}
}

// Sends at a low rate never wait for others, however long the linger: a
// wait would be a minute here.
func TestSendPipelineDoesNotLingerAtALowRate(t *testing.T) {
	b, _ := pipelineRoom(t, time.Minute, 2)
	// Two users send together, so the pipeline loop, not only a send
	// running itself, carries some of them: 400 sends a second.
	for n := range 25 {
		var wg sync.WaitGroup
		for u := range int64(2) {
			wg.Go(func() { sendOne(t, b, u+1, n) })
		}
		wg.Wait()
		time.Sleep(5 * time.Millisecond)
	}
	if b.lingering.Load() {
		t.Error("lingering at a low rate")
	}
}

// Under a fast load the pipeline lingers and its round trips carry
// batches; once the load is gone, it stops. The sends come paced, 8 a
// millisecond whatever their replies take, as users' sends do: a round
// trip that did not wait would carry the few that came during the last
// one (about 5 here), where one that waits carries up to lingerFill.
func TestSendPipelineLingersWhileSendsComeFast(t *testing.T) {
	const users, ticks = 8, 300
	b, trips := pipelineRoom(t, 20*time.Millisecond, users)
	var lingered atomic.Bool
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond)
	for n := range ticks {
		<-tick.C
		for u := range int64(users) {
			wg.Go(func() {
				sendOne(t, b, u+1, n)
				if b.lingering.Load() {
					lingered.Store(true)
				}
			})
		}
	}
	tick.Stop()
	wg.Wait()
	const sent = users * ticks
	if !lingered.Load() {
		t.Fatalf("%d sends at 8,000 a second never made the pipeline linger", sent)
	}
	if got := trips.Load(); got > sent/10 {
		t.Errorf("%d round trips for %d sends: lingering did not gather them", got, sent)
	}
	// The rate is judged over the round trips since the last judgement,
	// so the first lone send may still count the load's tail: it waits
	// at most a linger, and the next one judged turns lingering off.
	start := time.Now()
	for n := 0; n < 5 && (n < 2 || b.lingering.Load()); n++ {
		time.Sleep(2 * lingerWindow)
		sendOne(t, b, 1, ticks+n)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("lone sends after the load took %v", took)
	}
	if b.lingering.Load() {
		t.Error("still lingering once the load is gone")
	}
}

// At a low rate a send's script call goes on the shard connection that
// carries its room, so Redis writes the publish and the reply in one
// write and the node reads both at once: after the sends, Redis names
// EVALSHA as that connection's last command, and each message arrived
// on it.
func TestLowRateSendsTakeTheirRoomsShardConnection(t *testing.T) {
	b, _ := pipelineRoom(t, time.Minute, 1)
	rdb := b.rdb.(*redis.Client)
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.subs.open(ctx); err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.subs.receive(ctx, 0, c.deliver, func(err error) { t.Logf("pub/sub: %v", err) })
	}()
	t.Cleanup(func() {
		cancel()
		b.subs.close()
		<-done
	})
	if err := b.subs.add(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const sends = 20
	for n := range sends {
		sendOne(t, b, 1, n)
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, "the messages", func() bool { return c.count() == sends })
	sc := b.subs.sendConn(1)
	if sc == nil {
		t.Fatal("no shard connection for sends on a single Redis")
	}
	addr := sc.nc.LocalAddr().String()
	clients, err := rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(clients) {
		if !strings.Contains(line, " addr="+addr+" ") {
			continue
		}
		if !strings.Contains(line, " cmd=evalsha ") {
			t.Fatalf("the room's shard connection did not carry the sends: %s", line)
		}
		return
	}
	t.Fatalf("no client at %s in CLIENT LIST:\n%s", addr, clients)
}
