package hub

import (
	"context"
	"errors"
	"time"

	"github.com/gobwas/ws"

	"moim/api"
)

// StatusTokenRevoked (4001) closes a connection whose token no longer
// authenticates its user: logged out, password changed, user deleted or
// token expired. Reconnecting with the same token fails; log in again.
const StatusTokenRevoked ws.StatusCode = 4001

// TokensChanged tells every node that user's tokens changed (a logout, a
// password change, a deletion), so each checks the tokens of that user's
// open connections again and closes those no longer valid.
func (h *Hub) TokensChanged(ctx context.Context, user int64) {
	if err := h.broker.publishMembership(ctx, encode(membershipEvent{Users: []int64{user}, Recheck: true})); err != nil {
		h.log.Warn("publish token change", "user", user, "err", err)
	}
}

// tokenChangeMemory is how long a node remembers that a user's tokens
// changed. An upgrade checked its token before it registered, maybe
// against a verdict the accounts cache held a few seconds (2 s today);
// one registering within this long of a change checks again, so a
// logout that races a reconnect still closes it.
const tokenChangeMemory = 10 * time.Second

// tokenChanged notes that users' tokens changed now, and forgets
// changes older than tokenChangeMemory.
func (h *Hub) tokenChanged(users []int64) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for u, at := range h.tokensChanged {
		if now.Sub(at) > tokenChangeMemory {
			delete(h.tokensChanged, u)
		}
	}
	for _, u := range users {
		h.tokensChanged[u] = now
	}
}

// tokenChangedLately reports whether user's tokens changed within
// tokenChangeMemory. Called after register: a change heard later finds
// the connection registered, one heard earlier is found here.
func (h *Hub) tokenChangedLately(user int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	at, ok := h.tokensChanged[user]
	return ok && time.Since(at) <= tokenChangeMemory
}

// recheck checks again the tokens of users' connections on this node (all
// connections when users is nil), each distinct token once, and closes
// the connections whose token is refused with 401. A backend failure
// leaves the connection open: it is checked again next time.
func (h *Hub) recheck(users []int64) {
	var conns []*Conn
	h.mu.RLock()
	if users == nil {
		for c := range h.conns {
			conns = append(conns, c)
		}
	}
	for _, uid := range users {
		if u := h.users[uid]; u != nil {
			for c := range u.conns {
				conns = append(conns, c)
			}
		}
	}
	h.mu.RUnlock()
	verdict := map[string]error{}
	for _, c := range conns {
		if c.token == "" {
			continue
		}
		err, seen := verdict[c.token]
		if !seen {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = h.dir.CheckToken(ctx, c.token)
			cancel()
			verdict[c.token] = err
		}
		var ae *api.Error
		switch {
		case err == nil:
		case errors.As(err, &ae) && ae.Status == 401:
			h.closeConn(c, StatusTokenRevoked, "token no longer valid; log in again")
		default:
			h.log.Warn("recheck token", "user", c.user, "err", err)
		}
	}
}
