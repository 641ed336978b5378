package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"moim/internal/testkit"

	"github.com/redis/go-redis/v9"
)

// engines are both limiters: Redis on the real redis-server named by
// MOIM_TEST_REDIS_URL (required under CI=true), and memory.
func engines(t *testing.T) map[string]Limiter {
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
