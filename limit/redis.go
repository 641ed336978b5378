package limit

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed take.lua
	takeLua    string
	takeScript = redis.NewScript(takeLua)
	//go:embed give.lua
	giveLua    string
	giveScript = redis.NewScript(giveLua)
)

// redisLimiter counts in Redis, so every node shares the counts.
type redisLimiter struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedis returns a limiter whose counters are Redis keys starting with
// prefix, shared by every node on that Redis.
func NewRedis(rdb redis.UniversalClient, prefix string) Limiter {
	return &redisLimiter{rdb: rdb, prefix: prefix}
}

// key is one counter; the hash tag keeps it in one cluster slot.
func (l *redisLimiter) key(name, subject string) string {
	return l.prefix + ":limit:" + name + ":{" + subject + "}"
}

func (l *redisLimiter) Take(ctx context.Context, name, subject string, r Rule) (Use, error) {
	return l.count(ctx, name, subject, r, 1, false)
}

func (l *redisLimiter) TakeN(ctx context.Context, name, subject string, r Rule, cost int) (Use, error) {
	return l.count(ctx, name, subject, r, cost, false)
}

func (l *redisLimiter) Charge(ctx context.Context, name, subject string, r Rule, cost int) (Use, error) {
	return l.count(ctx, name, subject, r, cost, true)
}

// count adds cost events in one script call when they fit, or always
// when force is set.
func (l *redisLimiter) count(ctx context.Context, name, subject string, r Rule, cost int, force bool) (Use, error) {
	if r.Off() {
		return Use{OK: true}, nil
	}
	f := 0
	if force {
		f = 1
	}
	res, err := takeScript.Run(ctx, l.rdb, []string{l.key(name, subject)}, r.Window.Milliseconds(), r.N, cost, f).Int64Slice()
	if err != nil {
		return Use{}, fmt.Errorf("limit: take %d %s of %s: %w", cost, name, subject, err)
	}
	return Use{OK: res[0] == 1, Count: int(res[1]), Wait: time.Duration(res[2]) * time.Millisecond}, nil
}

func (l *redisLimiter) Give(ctx context.Context, name, subject string) error {
	if err := giveScript.Run(ctx, l.rdb, []string{l.key(name, subject)}).Err(); err != nil {
		return fmt.Errorf("limit: give back %s of %s: %w", name, subject, err)
	}
	return nil
}

func (l *redisLimiter) Reset(ctx context.Context, name, subject string) error {
	if err := l.rdb.Del(ctx, l.key(name, subject)).Err(); err != nil {
		return fmt.Errorf("limit: reset %s of %s: %w", name, subject, err)
	}
	return nil
}
