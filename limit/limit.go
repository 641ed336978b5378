// Package limit counts events per key in fixed windows: failed logins and
// room joins per user and per client address, sign-ups and WebSocket
// upgrades per address. Two engines share one interface: Redis, so every
// node enforces the same limits, and memory, for a single node.
//
// An attempt is reserved before it is checked (Take) and given back when
// it turns out not to count (Give), so parallel attempts can never all
// pass a check that each of them alone would fail.
package limit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

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

// Use is what Take decided.
type Use struct {
	// OK means the event was counted within the rule; otherwise nothing
	// was counted.
	OK bool
	// Count is how many events the window holds, this one included.
	Count int
	// Wait is how long until the window ends.
	Wait time.Duration
}

// Limiter counts events per name and subject (a username, an address).
type Limiter interface {
	// Take counts one event when fewer than r.N are counted in the
	// current window, atomically; an Off rule always allows.
	Take(ctx context.Context, name, subject string, r Rule) (Use, error)
	// TakeN counts cost events at once when they fit within r.N; else
	// nothing is counted. A budget charged by size (messages a sync
	// returns) uses it.
	TakeN(ctx context.Context, name, subject string, r Rule, cost int) (Use, error)
	// Charge counts cost events that have already happened, even past
	// r.N, so the next Take waits for the window to end; Use.OK reports
	// whether they fitted.
	Charge(ctx context.Context, name, subject string, r Rule, cost int) (Use, error)
	// Give takes back one event Take counted (an attempt that turned out
	// not to count, such as a login with the right password).
	Give(ctx context.Context, name, subject string) error
	// Reset forgets a subject's events.
	Reset(ctx context.Context, name, subject string) error
}

// TooMany is the 429 a refused request gets; it sets Retry-After.
func TooMany(c *fiber.Ctx, wait time.Duration, what string) error {
	secs := max(int((wait+time.Second-1)/time.Second), 1)
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	return api.Errorf(fiber.StatusTooManyRequests, "rate_limited", what+"; try again in "+strconv.Itoa(secs)+" s")
}

// PerAddress counts every request through it by client address (c.IP(),
// which honours MOIM_TRUSTED_PROXIES) and refuses those over r with 429.
func PerAddress(l Limiter, name string, r Rule, what string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		u, err := l.Take(c.UserContext(), name, c.IP(), r)
		if err != nil {
			return err
		}
		if !u.OK {
			return TooMany(c, u.Wait, what)
		}
		return c.Next()
	}
}
