package hub

import (
	"context"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"moim/limit"
)

// Budget is what one user may do per window, summed over every socket
// and REST call on every node: the limiter counts in Redis on the Redis
// path and in memory on the single-node engine. A nil Limiter limits
// nothing.
type Budget struct {
	Limiter limit.Limiter
	// Send counts sends and edits, over WebSocket and REST.
	Send limit.Rule
	// Sync counts one per sync frame, history or search request plus
	// every message each returns.
	Sync limit.Rule
	// Events counts read and typing frames, each of which reaches every
	// member of the room.
	Events limit.Rule
}

// Budget names, the limiter keys' middle part.
const (
	budgetSend   = "send"
	budgetSync   = "sync"
	budgetEvents = "events"
)

// spend counts cost against one of user's budgets. A limiter that fails
// (Redis down) allows: the action then fails or succeeds on its own.
func (h *Hub) spend(user int64, name string, r limit.Rule, cost int, charge bool) limit.Use {
	l := h.cfg.Budget.Limiter
	if l == nil || r.Off() {
		return limit.Use{OK: true}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	subject := strconv.FormatInt(user, 10)
	var u limit.Use
	var err error
	if charge {
		u, err = l.Charge(ctx, name, subject, r, cost)
	} else {
		u, err = l.TakeN(ctx, name, subject, r, cost)
	}
	if err != nil {
		h.log.Warn("budget", "user", user, "budget", name, "err", err)
		return limit.Use{OK: true}
	}
	if !u.OK {
		h.metrics.errors.WithLabelValues("rate_limited").Inc()
	}
	return u
}

// chargeSync charges n messages read to user's sync budget, whole even
// past the rule: what was read is served, and the next read waits.
func (h *Hub) chargeSync(user int64, n int) limit.Use {
	if n == 0 {
		return limit.Use{OK: true}
	}
	return h.spend(user, budgetSync, h.cfg.Budget.Sync, n, true)
}

// within takes one event of a frame's budget, or answers the frame with
// rate_limited and how long to wait.
func (h *Hub) within(c *Conn, name string, r limit.Rule, what, cid string, room int64) bool {
	u := h.spend(c.user, name, r, 1, false)
	if !u.OK {
		h.refuse(c, what, cid, room, u.Wait)
	}
	return u.OK
}

// refuse sends rate_limited with the wait in milliseconds.
func (h *Hub) refuse(c *Conn, what, cid string, room int64, wait time.Duration) {
	c.write(textFrame(encode(errorEvent{Type: "error", Code: "rate_limited", Message: what + "; slow down",
		CID: cid, Room: room, RetryAfterMS: max(wait.Milliseconds(), 1)})))
}

// withinREST is within for a REST call: 429 with Retry-After.
func (h *Hub) withinREST(c *fiber.Ctx, user int64, name string, r limit.Rule, what string) error {
	if u := h.spend(user, name, r, 1, false); !u.OK {
		return limit.TooMany(c, u.Wait, what)
	}
	return nil
}
