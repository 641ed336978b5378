package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"moim/internal/testkit"

	"github.com/redis/go-redis/v9"
)

// engines are both limiters: Redis on the real redis-server named by
// MOIM_TEST_REDIS_URL (required under CI=true), and memory.
func engines(t testing.TB) map[string]Limiter {
	t.Helper()
	out := map[string]Limiter{"memory": NewMemory()}
	url := testkit.Optional(t, testkit.EnvRedis, "testing the memory limiter only; the Redis limiter needs a redis-server")
	if url == "" {
		return out
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "tlimit" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, prefix+":*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	out["redis"] = NewRedis(rdb, prefix)
	return out
}

// TestParallelTakesNeverPassTheRule is the login race of issue 19: 25
// attempts at once against a limit of 10 must let exactly 10 through.
func TestParallelTakesNeverPassTheRule(t *testing.T) {
	for name, l := range engines(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rule := Rule{N: 10, Window: time.Minute}
			var ok, refused atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 25 {
				wg.Go(func() {
					<-start
					u, err := l.Take(ctx, "login", "alice", rule)
					if err != nil {
						t.Error(err)
						return
					}
					if u.OK {
						ok.Add(1)
					} else {
						refused.Add(1)
						if u.Wait <= 0 || u.Wait > time.Minute {
							t.Errorf("refused with wait %v", u.Wait)
						}
					}
				})
			}
			close(start)
			wg.Wait()
			if ok.Load() != 10 || refused.Load() != 15 {
				t.Fatalf("%d taken, %d refused; want 10 and 15", ok.Load(), refused.Load())
			}
			// A given-back attempt frees its place for exactly one more.
			if err := l.Give(ctx, "login", "alice"); err != nil {
				t.Fatal(err)
			}
			if u, _ := l.Take(ctx, "login", "alice", rule); !u.OK || u.Count != 10 {
				t.Fatalf("after a give back: %+v, want ok with count 10", u)
			}
			if u, _ := l.Take(ctx, "login", "alice", rule); u.OK {
				t.Fatal("a full window took one more")
			}
			// Other subjects and names are counted apart.
			if u, _ := l.Take(ctx, "login", "bob", rule); !u.OK || u.Count != 1 {
				t.Fatalf("bob: %+v", u)
			}
			if u, _ := l.Take(ctx, "join", "alice", rule); !u.OK {
				t.Fatalf("another name: %+v", u)
			}
			if err := l.Reset(ctx, "login", "alice"); err != nil {
				t.Fatal(err)
			}
			if u, _ := l.Take(ctx, "login", "alice", rule); !u.OK || u.Count != 1 {
				t.Fatalf("after reset: %+v", u)
			}
			if u, _ := l.Take(ctx, "login", "x", Rule{}); !u.OK {
				t.Fatal("an off rule refused")
			}
		})
	}
}

func TestWindowsEnd(t *testing.T) {
	for name, l := range engines(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rule := Rule{N: 1, Window: time.Second}
			if m, ok := l.(*memoryLimiter); ok {
				now := time.Now()
				m.now = func() time.Time { return now }
			}
			if u, _ := l.Take(ctx, "w", "s", rule); !u.OK {
				t.Fatal("first take refused")
			}
			if u, _ := l.Take(ctx, "w", "s", rule); u.OK {
				t.Fatal("second take allowed")
			}
			// Giving back past the window's end must not go below zero.
			if m, ok := l.(*memoryLimiter); ok {
				now := m.now()
				m.now = func() time.Time { return now.Add(1100 * time.Millisecond) }
			} else {
				time.Sleep(1100 * time.Millisecond)
			}
			_ = l.Give(ctx, "w", "s")
			if u, _ := l.Take(ctx, "w", "s", rule); !u.OK || u.Count != 1 {
				t.Fatalf("after the window: %+v, want a fresh count of 1", u)
			}
		})
	}
}

func TestMemorySweepsEndedWindows(t *testing.T) {
	m := NewMemory().(*memoryLimiter)
	now := time.Now()
	m.now = func() time.Time { return now }
	for _, s := range []string{"a", "b", "c"} {
		_, _ = m.Take(context.Background(), "w", s, Rule{N: 1, Window: time.Second})
	}
	m.now = func() time.Time { return now.Add(2 * sweepEvery) }
	_, _ = m.Take(context.Background(), "w", "d", Rule{N: 1, Window: time.Second})
	if len(m.counts) != 1 {
		t.Fatalf("%d counters kept, want only the live one", len(m.counts))
	}
}

// TestCostsAreCountedWhole is the sync budget: a cost that does not fit is
// refused whole, and work already done is charged even past the rule, so
// the next take waits.
func TestCostsAreCountedWhole(t *testing.T) {
	for name, l := range engines(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rule := Rule{N: 100, Window: time.Minute}
			if u, _ := l.TakeN(ctx, "sync", "alice", rule, 60); !u.OK || u.Count != 60 {
				t.Fatalf("60 of 100: %+v", u)
			}
			if u, _ := l.TakeN(ctx, "sync", "alice", rule, 41); u.OK || u.Count != 60 {
				t.Fatalf("41 more: %+v, want refused with nothing counted", u)
			}
			if u, _ := l.Charge(ctx, "sync", "alice", rule, 500); u.OK || u.Count != 560 {
				t.Fatalf("charging 500: %+v, want counted past the rule", u)
			}
			if u, _ := l.Take(ctx, "sync", "alice", rule); u.OK || u.Wait <= 0 {
				t.Fatalf("after an overdraft: %+v, want refused with a wait", u)
			}
			if u, _ := l.Charge(ctx, "sync", "bob", rule, 5); !u.OK || u.Count != 5 || u.Wait <= 0 {
				t.Fatalf("a first charge: %+v, want a window started", u)
			}
		})
	}
}

// TestPipelinedTakesLoadTheScript: takes that go out together in one
// pipeline right after Redis forgot its scripts (a restart) still count.
func TestPipelinedTakesLoadTheScript(t *testing.T) {
	l, ok := engines(t)["redis"].(*redisLimiter)
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no Redis limiter")
		}
		return
	}
	ctx := context.Background()
	if err := l.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rule := Rule{N: 15, Window: time.Minute}
	var ok15 atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			u, err := l.Take(ctx, "flush", "alice", rule)
			if err != nil {
				t.Error(err)
			}
			if u.OK {
				ok15.Add(1)
			}
		})
	}
	wg.Wait()
	if ok15.Load() != 15 {
		t.Fatalf("%d of 40 takes counted, want 15", ok15.Load())
	}
}

// BenchmarkTakeParallel is the per-send budget check under many
// concurrent senders (distinct users), on each engine.
func BenchmarkTakeParallel(b *testing.B) {
	for name, l := range engines(b) {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			rule := Rule{N: 1 << 30, Window: time.Minute}
			var n atomic.Int64
			b.SetParallelism(64)
			b.RunParallel(func(pb *testing.PB) {
				user := strconv.FormatInt(n.Add(1), 10)
				for pb.Next() {
					if _, err := l.Take(ctx, "send", user, rule); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
