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
	d.Resend = true // as Post's
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

// Message is one message of a room as clients see it now (edited, or a
// tombstone); nil when the room has no such seq.
func (h *Hub) Message(ctx context.Context, room, seq int64) ([]byte, error) {
	msgs, err := h.After(ctx, room, seq-1, 1)
	if err != nil || len(msgs) == 0 || seqOf(msgs[0]) != seq {
		return nil, err
	}
	return msgs[0], nil
}

// Publish sends an event to a room's connections on every node; it is not
// stored (the state it announces is read over REST).
func (h *Hub) Publish(ctx context.Context, room int64, event []byte) error {
	return h.broker.publish(ctx, room, event)
}

// OnAccept has f hear of every message the log newly accepts on this
// node (each message is accepted on one node), with its seq; f must not
// block, since it runs on the send path before the ack. Call it before
// serving.
func (h *Hub) OnAccept(f func(d *chatlog.Draft, seq int64)) { h.onAccept = f }

// Online reports which of users have a live connection on any node.
func (h *Hub) Online(ctx context.Context, users []int64) (map[int64]bool, error) {
	return h.broker.online(ctx, users)
}
