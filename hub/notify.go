package hub

import (
	"context"
	"encoding/json"
	"time"

	"moim/chatlog"
)

// Announce posts a system message (kind "system") into a room through
// the same path as a member's message, with system as its structured
// "system" field; idem makes a retry of the same event store it once. It
// is best effort beside the change it announces: a failure is logged and
// the change stands.
func (h *Hub) Announce(ctx context.Context, room int64, body, idem string, system json.RawMessage) {
	d := chatlog.NewDraft(room, 0, "", body, idem, chatlog.KindSystem, 0, time.Now().UnixMilli())
	d.WithSystem(system)
	if _, err := h.accept(d); err != nil {
		h.log.Warn("system message not posted", "room", room, "idem", idem, "err", err)
	}
}

// Notify sends an event to every connection of users, on every node (an
// invitation reaches the invitee wherever they are connected). Like
// room events it is live only: a user with no connection gets nothing
// and reads the state over REST.
func (h *Hub) Notify(ctx context.Context, users []int64, event []byte) {
	payload := encode(membershipEvent{Users: users, Event: event})
	if err := h.broker.publishMembership(ctx, payload); err != nil {
		h.log.Warn("publish user event", "users", len(users), "err", err)
	}
}

// deliverToUsers writes an event to this node's connections of users.
func (h *Hub) deliverToUsers(users []int64, event []byte) {
	frame := textFrame(event)
	var targets []*Conn
	h.mu.RLock()
	for _, uid := range users {
		if u := h.users[uid]; u != nil {
			for c := range u.conns {
				targets = append(targets, c)
			}
		}
	}
	h.mu.RUnlock()
	for _, c := range targets {
		c.write(frame)
	}
	h.metrics.framesOut.Add(float64(len(targets)))
}
