package accounts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
)

// TicketTTL is how long a WebSocket ticket can be redeemed: a browser
// opens its socket right after asking, and a leaked ticket soon dies.
const TicketTTL = 30 * time.Second

// Tickets hold single-use WebSocket tickets. A browser cannot set a
// header on a WebSocket, so it asks for a ticket with its token in the
// header and opens /ws?ticket=…: the token never appears in a URL, and a
// ticket that does (in a log) is already used or soon expired.
type Tickets interface {
	// put keeps token under ticket for ttl.
	put(ctx context.Context, ticket, token string, ttl time.Duration) error
	// take returns ticket's token and forgets it, atomically, so a ticket
	// opens one socket on any node; ok is false for an unknown, used or
	// expired ticket.
	take(ctx context.Context, ticket string) (token string, ok bool, err error)
}

// redisTickets keep tickets in Redis, so any node redeems them once.
type redisTickets struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisTickets keeps tickets under Redis keys starting with prefix.
func NewRedisTickets(rdb redis.UniversalClient, prefix string) Tickets {
	return &redisTickets{rdb: rdb, prefix: prefix + ":wsticket:"}
}

func (r *redisTickets) put(ctx context.Context, ticket, token string, ttl time.Duration) error {
	if err := r.rdb.Set(ctx, r.prefix+ticket, token, ttl).Err(); err != nil {
		return fmt.Errorf("accounts: keep ws ticket: %w", err)
	}
	return nil
}

func (r *redisTickets) take(ctx context.Context, ticket string) (string, bool, error) {
	tok, err := r.rdb.GetDel(ctx, r.prefix+ticket).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("accounts: redeem ws ticket: %w", err)
	}
	return tok, true, nil
}

// memoryTickets keep tickets in this process, for a node that runs alone.
type memoryTickets struct {
	mu    sync.Mutex
	m     map[string]heldTicket
	swept time.Time
}

type heldTicket struct {
	token string
	until time.Time
}

// NewMemoryTickets keeps tickets in this process only.
func NewMemoryTickets() Tickets { return &memoryTickets{m: map[string]heldTicket{}} }

func (m *memoryTickets) put(_ context.Context, ticket, token string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if now.Sub(m.swept) >= TicketTTL { // unredeemed tickets go within two TTLs
		m.swept = now
		for k, h := range m.m {
			if !now.Before(h.until) {
				delete(m.m, k)
			}
		}
	}
	m.m[ticket] = heldTicket{token, now.Add(ttl)}
	return nil
}

func (m *memoryTickets) take(_ context.Context, ticket string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.m[ticket]
	delete(m.m, ticket)
	if !ok || !time.Now().Before(h.until) {
		return "", false, nil
	}
	return h.token, true, nil
}

// UseTickets sets where WebSocket tickets are kept; call it before
// serving. Without it /ws?ticket= is refused.
func (t *Tokens) UseTickets(tk Tickets) { t.tickets = tk }

// handleTicket serves POST /api/ws-ticket: a single-use ticket for the
// caller's token, redeemable once within TicketTTL.
func (a *Accounts) handleTicket(c *fiber.Ctx) error {
	if a.tokens.tickets == nil {
		return fiber.ErrNotFound
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("accounts: ws ticket: %w", err)
	}
	ticket := hex.EncodeToString(b)
	if err := a.tokens.tickets.put(c.UserContext(), ticket, Token(c), TicketTTL); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"ticket": ticket, "expires_in_s": int(TicketTTL / time.Second)})
}
