//go:build linux

package hub

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"moim/chatlog"
)

// BenchmarkPubSubReceive is one node's side of cross-node delivery on a
// single redis-server (MOIM_TEST_REDIS_URL): 300 rooms of ~300-byte
// messages published in pipelines of 32, as the send pipeline does, and
// read by the node's shard connections, with 16 connections (one per
// persistence shard, the old layout) and with one per core (this build).
// Fan-out is left out (it is the same either way). It reports the CPU the
// process and redis-server spent per message: wall time on a shared host
// says little.
//
//	MOIM_TEST_REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench PubSubReceive -benchtime 30000x ./hub
func BenchmarkPubSubReceive(b *testing.B) {
	for _, conns := range []int{16, 0} {
		name := "conns=" + strconv.Itoa(conns)
		if conns == 0 {
			name = "conns=per-core"
		}
		b.Run(name, func(b *testing.B) { benchPubSubReceive(b, conns) })
	}
}

func benchPubSubReceive(b *testing.B, conns int) {
	rdb := testRedis(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := chatlog.Keys{Prefix: fmt.Sprintf("pubsubbench%d", time.Now().UnixNano()), Shards: 16}
	s := newSubscriptions(rdb, keys, "node-a")
	if conns > 0 {
		s.shards = make([]*shardSub, conns)
		for i := range s.shards {
			s.shards[i] = &shardSub{rooms: map[int64]struct{}{}}
		}
	}
	if err := s.open(ctx); err != nil {
		b.Fatal(err)
	}
	defer s.close()
	const rooms = 300
	ids := make([]int64, rooms)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	// The shards' receive loops run first, as on a node: add returns once
	// they have read Redis's confirmation of each SUBSCRIBE.
	var got atomic.Int64
	var wg sync.WaitGroup
	for i := range s.shards {
		wg.Go(func() {
			s.receive(ctx, i, func(_, payload string) { got.Add(1) }, func(error) {})
		})
	}
	if err := s.add(ctx, ids...); err != nil {
		b.Fatal(err)
	}
	payload := `{"type":"msg","room":1,"seq":1,"from":7,"name":"lg_00007","body":"` + strings.Repeat("x", 200) + `","ts":1}`
	pub := redis.NewClient(rdb.Options())
	defer pub.Close()
	redisCPU := func() float64 {
		info, _ := pub.Info(ctx, "cpu").Result()
		var sum float64
		for _, line := range strings.Split(info, "\r\n") {
			for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
				if v, ok := strings.CutPrefix(line, k); ok {
					f, _ := strconv.ParseFloat(v, 64)
					sum += f
				}
			}
		}
		return sum
	}
	cpu := func() time.Duration {
		var ru unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	r0, c0 := redisCPU(), cpu()
	for i := 0; i < b.N; {
		pipe := pub.Pipeline()
		for end := min(i+32, b.N); i < end; i++ {
			pipe.Publish(ctx, keys.Channel(ids[i%rooms]), payload)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Minute); got.Load() < int64(b.N); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("received %d of %d", got.Load(), b.N)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu()-c0)/float64(b.N), "cpu-ns/msg")
	b.ReportMetric((redisCPU()-r0)*1e9/float64(b.N), "redis-cpu-ns/msg")
	cancel()
	s.close()
	wg.Wait()
}
