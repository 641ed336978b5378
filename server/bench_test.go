package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"moim/chatlog"
)

// BenchmarkStoredPerMinute pushes messages through the real send path
// (the hub's script into Redis Streams) from many goroutines and reports
// how many the batcher stores per minute, end to end, and how long the
// last message waited in Redis. Run it with -benchtime 1x:
//
//	go test -run '^$' -bench StoredPerMinute -benchtime 1x ./server
func BenchmarkStoredPerMinute(b *testing.B) {
	const total, producers, roomCount = 20000, 32, 100
	for i := 0; i < b.N; i++ {
		cfg := benchConfig(b)
		n := startBenchNode(b, cfg)
		ctx := context.Background()
		st := n.backends.msgs
		ids := make([]int64, roomCount)
		for r := range ids {
			ids[r] = int64(r + 1)
			if err := n.backends.redis.Set(ctx, chatlog.Keys{Prefix: cfg.RedisPrefix, Shards: cfg.StreamShards}.Seq(ids[r]), 0, 0).Err(); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		var wg sync.WaitGroup
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := p; k < total; k += producers {
					room := ids[k%roomCount]
					seq, err := n.hub.Post(ctx, room, chatlog.KindSystem, "benchmark message with a body of about sixty bytes, 한글 포함", fmt.Sprint("b", k), nil)
					if seq == 0 && err == nil {
						b.Errorf("post %d: no seq", k)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		accepted := time.Since(start)
		// The batcher's count as an operator reads it, from /metrics.
		for stored := 0.0; stored < total; stored = metricValue(b, n, "moim_store_messages_stored_total") {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("only %v of %d stored after 5 minutes", stored, total)
			}
			time.Sleep(20 * time.Millisecond)
		}
		all := time.Since(start)
		b.ReportMetric(float64(total)/all.Minutes(), "stored/min")
		b.ReportMetric(float64(total)/accepted.Minutes(), "accepted/min")
		b.ReportMetric((all-accepted).Seconds()*1000, "ms-drain-after-last-accept")
		var stored int64
		for _, r := range ids {
			c, err := st.Count(ctx, r)
			if err != nil {
				b.Fatal(err)
			}
			stored += c
		}
		if stored != total {
			b.Fatalf("the store holds %d messages, want %d", stored, total)
		}
		n.stop()
	}
}
