package limit

import (
	"context"
	_ "embed"
	"fmt"
	"sync"
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

// redisLimiter counts in Redis, so every node shares the counts. Calls
// made while others are in flight go out together in one pipeline: a
// busy node's per-send budget checks cost one round trip per batch, not
// per send.
type redisLimiter struct {
	rdb    redis.UniversalClient
	prefix string

	mu       sync.Mutex
	queue    []*countCall
	flushing bool
}

// countCall is one queued script call and, once done is closed, its result.
type countCall struct {
	ctx  context.Context
	key  string
	args []any
	res  []int64
	err  error
	done chan struct{}
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
	call := &countCall{ctx: ctx, key: l.key(name, subject), args: []any{r.Window.Milliseconds(), r.N, cost, f}, done: make(chan struct{})}
	l.run(call)
	if call.err != nil {
		return Use{}, fmt.Errorf("limit: take %d %s of %s: %w", cost, name, subject, call.err)
	}
	res := call.res
	return Use{OK: res[0] == 1, Count: int(res[1]), Wait: time.Duration(res[2]) * time.Millisecond}, nil
}

// run queues call and waits for it. The caller that finds no flush going
// sends everything queued in one pipeline; calls queued meanwhile go in
// the next one, flushed by a goroutine so this caller returns at once.
func (l *redisLimiter) run(call *countCall) {
	l.mu.Lock()
	l.queue = append(l.queue, call)
	if l.flushing {
		l.mu.Unlock()
		<-call.done
		return
	}
	l.flushing = true
	l.mu.Unlock()
	l.flush()
	<-call.done
}

// flush sends queued calls until none is left.
func (l *redisLimiter) flush() {
	l.mu.Lock()
	batch := l.queue
	l.queue = nil
	l.mu.Unlock()
	l.send(batch)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		l.flushing = false
		return
	}
	go l.flush()
}

// send runs batch in one pipeline; a script Redis does not hold yet
// (NOSCRIPT) is run on its own, which loads it.
func (l *redisLimiter) send(batch []*countCall) {
	defer func() {
		for _, c := range batch {
			close(c.done)
		}
	}()
	if len(batch) == 1 {
		c := batch[0]
		c.res, c.err = takeScript.Run(c.ctx, l.rdb, []string{c.key}, c.args...).Int64Slice()
		return
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = takeScript.EvalSha(c.ctx, pipe, []string{c.key}, c.args...)
	}
	_, _ = pipe.Exec(context.Background()) // errors are read per command
	for i, c := range batch {
		c.res, c.err = cmds[i].Int64Slice()
		if c.err != nil && redis.HasErrorPrefix(c.err, "NOSCRIPT") {
			c.res, c.err = takeScript.Run(c.ctx, l.rdb, []string{c.key}, c.args...).Int64Slice()
		}
	}
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
