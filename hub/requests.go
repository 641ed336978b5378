package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"moim/chatlog"
	"moim/limit"
)

// send validates a member's message once, stores it with one script call
// and acknowledges it; delivery follows through the room's channel.
func (h *Hub) send(c *Conn, in *inbound) {
	if in.Room <= 0 { // the room is the address, as a REST path's id: bad_request there too
		h.fail(c, "bad_request", "room must be a room id", in.CID, 0)
		return
	}
	if err := checkSend(in.CID, in.Body, in.Attachment, in.ReplyTo); err != nil {
		h.fail(c, err.Code, err.Message, in.CID, in.Room)
		return
	}
	if !c.bucket.allow(time.Now(), h.cfg.SendRate, h.cfg.SendBurst) {
		h.fail(c, "rate_limited", "sending too fast; slow down", in.CID, in.Room)
		return
	}
	if wait := h.adm.busyTurn(&c.turn, time.Now()); wait > 0 {
		h.refuseBusy(c, in.CID, in.Room, wait)
		return
	}
	if !h.within(c, budgetSend, h.cfg.Budget.Send, "sending too fast", in.CID, in.Room) {
		return
	}
	d := chatlog.NewDraft(in.Room, c.user, c.name, in.Body, in.CID, chatlog.KindText, in.ReplyTo, time.Now().UnixMilli())
	d.Resend = in.Resend
	if strings.Contains(in.Body, "@") { // the common body costs no context or lookup
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		h.withMentions(ctx, in.Room, in.Body, d.WithMentions)
		cancel()
	}
	if in.Attachment != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := h.attach(ctx, d, in.Attachment)
		cancel()
		if err != nil {
			h.failWith(c, err, in.CID, in.Room)
			return
		}
	}
	cid, room := in.CID, in.Room
	ps := c.expect(room, cid)
	if p, ok := h.broker.(pipeliner); ok {
		// The worker moves on to the next readable socket; the ack is
		// written once the group commit holding the message is done.
		start := h.starting()
		p.acceptThen(d, func(acc chatlog.Accepted, err error) {
			h.accepted(d, acc, err, start)
			h.answerSend(c, ps, cid, room, acc, err)
		})
		return
	}
	acc, err := h.accept(d)
	h.answerSend(c, ps, cid, room, acc, err)
}

// pipeliner is a broker that takes a send without holding the caller
// until it is durable (the single-node engine's group commit).
type pipeliner interface {
	acceptThen(d *chatlog.Draft, then func(chatlog.Accepted, error))
}

// answerSend acks a send (settle), or says why it was not accepted.
func (h *Hub) answerSend(c *Conn, p *pendingSend, cid string, room int64, acc chatlog.Accepted, err error) {
	if err == nil {
		h.settle(c, p, acc.Seq, acc.TS, acc.Dup)
		return
	}
	c.forget(p)
	if errors.Is(err, errNotMember) {
		h.fail(c, "not_member", "you are not a member of this room", cid, room)
		return
	}
	h.log.Warn("send failed", "room", room, "err", err)
	h.fail(c, "unavailable", "message not acknowledged; retry with the same cid and resend true", cid, room)
}

// accept stores a draft through the broker and counts it.
func (h *Hub) accept(d *chatlog.Draft) (chatlog.Accepted, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := h.starting()
	acc, err := h.broker.accept(ctx, d)
	h.accepted(d, acc, err, start)
	return acc, err
}

// starting counts a send in flight, which admission watches for sends
// that go without finishing, and returns when it started.
func (h *Hub) starting() time.Time {
	h.adm.inflight.Add(1)
	return time.Now()
}

// accepted counts a draft's outcome (ending what starting began) and
// tells OnAccept's listener of a newly accepted message.
func (h *Hub) accepted(d *chatlog.Draft, acc chatlog.Accepted, err error, start time.Time) {
	took := time.Since(start)
	h.adm.inflight.Add(-1)
	h.adm.finished.Add(1)
	h.adm.observe(took)
	h.metrics.redisRTT.Observe(took.Seconds())
	if err == nil && !acc.Dup {
		h.metrics.accepted.Inc()
		if h.onAccept != nil {
			h.onAccept(d, acc.Seq)
		}
	}
}

// Post publishes a server-side message (kind system or fee) into a room
// through the same path as a member's message; idem makes retries safe and
// fields, when not nil, are carried as the message's structured "system"
// (kind system) or "fee" field.
func (h *Hub) Post(ctx context.Context, room int64, kind, body, idem string, fields json.RawMessage) (int64, error) {
	d := chatlog.NewDraft(room, 0, "", body, idem, kind, 0, time.Now().UnixMilli())
	// Its producer may retry after an outage of any length (the fee
	// relay), past Redis's dedupe window: on Redis an unknown idem is
	// looked up in the store, a query per server-side message.
	d.Resend = true
	switch {
	case fields == nil:
	case kind == chatlog.KindSystem:
		d.WithSystem(fields)
	default:
		d.WithFee(fields)
	}
	acc, err := h.accept(d)
	return acc.Seq, err
}

const maxSyncRooms = 200

// sync answers each room with what the user missed. It is charged to the
// user's sync budget: one for the frame, then every message returned.
// Once the budget is spent the remaining rooms get rate_limited (with
// the wait) instead of messages, so a window serves at most one page
// past the budget.
func (h *Hub) sync(c *Conn, in *inbound) {
	if len(in.Rooms) == 0 || len(in.Rooms) > maxSyncRooms {
		h.fail(c, "bad_request", "rooms must map 1 to 200 room ids to the last seq seen", "", 0)
		return
	}
	rule := h.cfg.Budget.Sync
	spent := h.spend(c.user, budgetSync, rule, 1, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for key, after := range in.Rooms {
		room, err := strconv.ParseInt(key, 10, 64)
		if err != nil || room <= 0 || after < 0 {
			h.fail(c, "bad_request", "rooms must map room ids to seqs", "", 0)
			continue
		}
		if !h.isMember(c.user, room) {
			h.fail(c, "not_member", "you are not a member of this room", "", room)
			continue
		}
		if !spent.OK {
			h.refuse(c, "syncing too much", "", room, spent.Wait)
			continue
		}
		msgs, err := h.After(ctx, room, after, h.cfg.SyncLimit)
		var gaps []chatlog.Gap
		if err == nil {
			gaps, err = h.gapsIn(ctx, room, after, msgs)
		}
		if err != nil {
			h.log.Warn("sync failed", "room", room, "err", err)
			h.fail(c, "unavailable", "sync failed; try again", "", room)
			continue
		}
		if u := h.chargeSync(c.user, len(msgs)); !u.OK {
			spent = limit.Use{Wait: u.Wait} // the next room waits
		}
		last := after
		for _, m := range msgs {
			c.write(textFrame(m))
		}
		if len(msgs) > 0 {
			last = seqOf(msgs[len(msgs)-1])
		}
		// After the messages: whatever of a gap has not arrived by now
		// never will (docs/PROTOCOL.md, section 5).
		for _, g := range gaps {
			c.write(textFrame(encode(gapEvent{Type: "gap", Room: room, From: g.From, To: g.To})))
		}
		c.write(textFrame(encode(syncedEvent{Type: "synced", Room: room, Seq: last})))
	}
}

// After returns up to limit messages of room after seq, oldest first: the
// store's part older than the recent stream, then the recent stream, so a
// message is readable the moment it is acknowledged, stored or not.
func (h *Hub) After(ctx context.Context, room, after int64, limit int) ([][]byte, error) {
	recent, complete, err := h.broker.recent(ctx, room, after, limit)
	if err != nil {
		return nil, err
	}
	if h.history == nil || complete {
		return recent, nil
	}
	older, err := h.history.After(ctx, room, after, limit)
	if err != nil {
		return nil, err
	}
	if len(recent) > 0 {
		first := seqOf(recent[0])
		for len(older) > 0 && seqOf(older[len(older)-1]) >= first {
			older = older[:len(older)-1]
		}
	}
	out := append(older, recent...)
	return out[:min(len(out), limit)], nil
}

// Before returns up to limit messages of room before seq (0: the newest),
// newest first, from the recent stream and then the store.
func (h *Hub) Before(ctx context.Context, room, before int64, limit int) ([][]byte, error) {
	recent, err := h.broker.recentBefore(ctx, room, before, limit)
	if err != nil {
		return nil, err
	}
	if len(recent) == limit || h.history == nil {
		return recent, nil
	}
	from := before
	if len(recent) > 0 {
		from = seqOf(recent[len(recent)-1])
	} else if from == 0 {
		from = 1 << 62
	}
	older, err := h.history.Before(ctx, room, from, limit-len(recent))
	if err != nil {
		return nil, err
	}
	return append(recent, older...), nil
}

// gapsIn returns the recorded gaps of room that explain missing seqs in
// msgs (oldest first, following after), clipped to the span msgs covers:
// none is looked up while the seqs run on without a hole, which is always
// unless Redis lost data.
func (h *Hub) gapsIn(ctx context.Context, room, after int64, msgs [][]byte) ([]chatlog.Gap, error) {
	prev, hole := after, false
	for _, m := range msgs {
		seq := seqOf(m)
		hole = hole || seq != prev+1
		prev = seq
	}
	if !hole || h.history == nil {
		return nil, nil
	}
	gaps, err := h.history.Gaps(ctx, room, after+1, prev)
	for i := range gaps {
		gaps[i].From, gaps[i].To = max(gaps[i].From, after+1), min(gaps[i].To, prev)
	}
	return gaps, err
}

var seqField = []byte(`"seq":`)

// seqOf reads the seq of an encoded msg.
func seqOf(msg []byte) int64 { return intField(msg, seqField) }

// roomSeq checks a frame that names a seq in one of the user's rooms;
// false means an error was sent.
func (h *Hub) roomSeq(c *Conn, in *inbound, what string) bool {
	if in.Room <= 0 || in.Seq <= 0 {
		h.fail(c, "bad_request", what+" needs a room and a seq", "", in.Room)
		return false
	}
	if !h.isMember(c.user, in.Room) {
		h.fail(c, "not_member", "you are not a member of this room", "", in.Room)
		return false
	}
	return true
}

func (h *Hub) read(c *Conn, in *inbound) {
	if !h.roomSeq(c, in, "read") || !h.within(c, budgetEvents, h.cfg.Budget.Events, "sending read receipts too fast", "", in.Room) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pos, err := h.broker.markRead(ctx, in.Room, c.user, in.Seq)
	if err == nil && pos > 0 {
		err = h.broker.publish(ctx, in.Room, encode(readEvent{Type: "read", Room: in.Room, User: c.user, Seq: pos}))
	}
	if err != nil {
		h.fail(c, "unavailable", "read receipt not stored; try again", "", in.Room)
	}
}

// delete tombstones a message: its author may, and so may room admins.
func (h *Hub) delete(c *Conn, in *inbound) {
	if !h.roomSeq(c, in, "delete") {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := h.find(ctx, in.Room, in.Seq)
	if err != nil {
		h.fail(c, "unavailable", "delete failed; try again", "", in.Room)
		return
	}
	if msg == nil {
		h.fail(c, "not_found", "no such message", "", in.Room)
		return
	}
	var m struct {
		From int64  `json:"from"`
		Kind string `json:"kind"`
	}
	_ = json.Unmarshal(msg, &m)
	// Fee and system messages are the room's record of its money and
	// membership: nobody deletes them, not even an admin.
	if m.Kind == chatlog.KindFee || m.Kind == chatlog.KindSystem {
		h.fail(c, "forbidden", "fee and system messages cannot be deleted", "", in.Room)
		return
	}
	if m.From != c.user {
		admin, err := h.dir.IsAdmin(ctx, in.Room, c.user)
		if err != nil {
			h.fail(c, "unavailable", "delete failed; try again", "", in.Room)
			return
		}
		if !admin {
			h.fail(c, "forbidden", "only the author or a room admin can delete a message", "", in.Room)
			return
		}
	}
	if _, err := h.broker.delete(ctx, in.Room, in.Seq, c.user); err != nil {
		h.fail(c, "unavailable", "delete failed; try again", "", in.Room)
	}
}

// find reads one message from the recent stream, else from the store.
func (h *Hub) find(ctx context.Context, room, seq int64) ([]byte, error) {
	msg, err := h.broker.message(ctx, room, seq)
	if err != nil || msg != nil || h.history == nil {
		return msg, err
	}
	msgs, err := h.history.After(ctx, room, seq-1, 1)
	if err != nil || len(msgs) == 0 || seqOf(msgs[0]) != seq {
		return nil, err
	}
	return msgs[0], nil
}

func (h *Hub) typing(c *Conn, in *inbound) {
	if !h.isMember(c.user, in.Room) {
		h.fail(c, "not_member", "you are not a member of this room", "", in.Room)
		return
	}
	if !c.bucket.allow(time.Now(), h.cfg.SendRate, h.cfg.SendBurst) {
		return // typing is best-effort; dropping it is the right throttle
	}
	if !h.within(c, budgetEvents, h.cfg.Budget.Events, "sending typing too fast", "", in.Room) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = h.broker.publish(ctx, in.Room, encode(typingEvent{Type: "typing", Room: in.Room, User: c.user}))
}
