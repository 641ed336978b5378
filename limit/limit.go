// Package limit counts events per key in fixed windows kept in Redis, so
// every node enforces the same limits: failed logins per username and per
// client address, sign-ups and WebSocket upgrades per address.
package limit

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"moim/api"
)

// Rule allows N events per Window; N == 0 turns it off.
type Rule struct {
	N      int
	Window time.Duration
}

// Off reports whether the rule limits nothing.
func (r Rule) Off() bool { return r.N <= 0 }

// String is the rule as ParseRule reads it.
func (r Rule) String() string {
	if r.Off() {
		return "off"
	}
	return strconv.Itoa(r.N) + "/" + r.Window.String()
}

// ParseRule reads "10/10m" (10 per 10 minutes); "off" or "0" is no limit.
func ParseRule(s string) (Rule, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Rule{}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	count, err1 := strconv.Atoi(n)
	window, err2 := time.ParseDuration(w)
	if !ok || err1 != nil || err2 != nil || count < 1 || window < time.Second {
		return Rule{}, fmt.Errorf(`%q is not a limit like "10/10m" (a count, a slash, a window of at least 1s) or "off"`, s)
	}
	return Rule{N: count, Window: window}, nil
}

//go:embed window.lua
var windowLua string

var windowScript = redis.NewScript(windowLua)

// Limiter counts events in Redis under prefix, or in memory when it has no
// Redis (a single node).
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
	mu     sync.Mutex
	counts map[string]window
}

type window struct {
	n    int64
	ends time.Time
}

// New returns a limiter whose keys start with prefix; with a nil rdb it
// counts in memory.
func New(rdb redis.UniversalClient, prefix string) *Limiter {
	return &Limiter{rdb: rdb, prefix: prefix, counts: map[string]window{}}
}

// key is one counter; the hash tag keeps it in one cluster slot.
func (l *Limiter) key(name, subject string) string {
	return l.prefix + ":limit:" + name + ":{" + subject + "}"
}

func (l *Limiter) run(ctx context.Context, name, subject string, r Rule, count bool) (bool, time.Duration, error) {
	if r.Off() {
		return true, 0, nil
	}
	if l.rdb == nil {
		return l.runMemory(l.key(name, subject), r, count)
	}
	flag := "0"
	if count {
		flag = "1"
	}
	res, err := windowScript.Run(ctx, l.rdb, []string{l.key(name, subject)}, r.Window.Milliseconds(), flag).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("limit: %s of %s: %w", name, subject, err)
	}
	n, left := res[0], time.Duration(res[1])*time.Millisecond
	if count {
		return n <= int64(r.N), left, nil
	}
	return n < int64(r.N), left, nil
}

func (l *Limiter) runMemory(key string, r Rule, count bool) (bool, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	w := l.counts[key]
	if !now.Before(w.ends) {
		w = window{ends: now.Add(r.Window)}
	}
	if count {
		w.n++
		l.counts[key] = w
		return w.n <= int64(r.N), w.ends.Sub(now), nil
	}
	return w.n < int64(r.N), w.ends.Sub(now), nil
}

// Hit counts one event and reports whether it is within the rule; when
// not, wait is how long until the window ends.
func (l *Limiter) Hit(ctx context.Context, name, subject string, r Rule) (ok bool, wait time.Duration, err error) {
	return l.run(ctx, name, subject, r, true)
}

// Check reports, without counting, whether one more event is allowed.
func (l *Limiter) Check(ctx context.Context, name, subject string, r Rule) (ok bool, wait time.Duration, err error) {
	return l.run(ctx, name, subject, r, false)
}

// Reset forgets a subject's events (a successful login clears its
// username's failures).
func (l *Limiter) Reset(ctx context.Context, name, subject string) error {
	if l.rdb == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.counts, l.key(name, subject))
		return nil
	}
	return l.rdb.Del(ctx, l.key(name, subject)).Err()
}

// TooMany is the 429 a refused request gets; it sets Retry-After.
func TooMany(c *fiber.Ctx, wait time.Duration, what string) error {
	secs := int((wait + time.Second - 1) / time.Second)
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(secs, 1)))
	return api.Errorf(fiber.StatusTooManyRequests, "rate_limited", what+"; try again in "+strconv.Itoa(max(secs, 1))+" s")
}

// PerAddress counts every request through it by client address (c.IP(),
// which honours MOIM_TRUSTED_PROXIES) and refuses those over r with 429.
func (l *Limiter) PerAddress(name string, r Rule, what string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ok, wait, err := l.Hit(c.UserContext(), name, c.IP(), r)
		if err != nil {
			return err
		}
		if !ok {
			return TooMany(c, wait, what)
		}
		return c.Next()
	}
}
