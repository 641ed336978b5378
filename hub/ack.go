package hub

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"time"
)

// A WebSocket send is answered twice on its connection: the ack, and the
// sender's own copy of the msg, which every member gets. They come from
// two places (the accept path and the fanout) within a fraction of a
// millisecond, and written together they cost the node one system call
// instead of two and the client one wake-up: a tenth of the writes at
// rooms of ten. So a send is registered on its connection before it is
// accepted (expect), and whichever comes second writes both, the msg
// first as before: the fanout, which builds the ack from the msg if the
// accept path has not parked one yet (ownCopy), or the accept path when
// the msg went out already (settle). An ack parked for a msg that does
// not come within ackWait (the connection left the room's local set, the
// node is behind) goes alone.

// ackWait is how long a parked ack waits for its msg. The msg left Redis
// (or the commit) with the ack, so it is normally there in microseconds;
// the wait only bounds the rare ack whose msg goes elsewhere or late.
const ackWait = 2 * time.Millisecond

// pendingSend is one send of a connection between expect and its ack,
// guarded by the connection's mu.
type pendingSend struct {
	room int64
	cid  []byte // JSON-encoded, as the msg carries it
	// ack is the parked ack, once settle left it for the msg.
	ack []byte
}

var (
	fromField = []byte(`"from":`)
	cidField  = []byte(`"cid":`)
)

// ownMsg is what the fanout needs of a msg to find its sender's pending
// send: from is 0 for any other event.
type ownMsg struct {
	from, room, seq, ts int64
	cid                 []byte
}

// parseOwn reads a msg event's sender, seq, ts and cid, once per
// broadcast. The fields precede any user text, and a string's quotes are
// escaped inside it, so the first match of each is the field.
func parseOwn(room int64, payload []byte) ownMsg {
	if !bytes.HasPrefix(payload, msgPrefix) {
		return ownMsg{}
	}
	from := intField(payload, fromField)
	i := bytes.Index(payload, cidField)
	if from == 0 || i < 0 {
		return ownMsg{}
	}
	return ownMsg{from: from, room: room, seq: seqOf(payload), ts: acceptedAt(payload), cid: payload[i+len(cidField):]}
}

// sentBy says whether c is a connection of the msg's sender.
func (m *ownMsg) sentBy(c *Conn) bool { return m.from != 0 && c.user == m.from }

// ackFrame is the ack of a send as a text frame.
func ackFrame(cid []byte, room, seq, ts int64) []byte {
	b := make([]byte, 0, 64+len(cid))
	b = append(b, `{"type":"ack","cid":`...)
	b = append(b, cid...)
	b = append(b, `,"room":`...)
	b = strconv.AppendInt(b, room, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	return textFrame(append(b, '}'))
}

// expect registers a send of c before it is accepted.
func (c *Conn) expect(room int64, cid string) *pendingSend {
	q, _ := json.Marshal(cid) // a string always marshals
	p := &pendingSend{room: room, cid: q}
	c.mu.Lock()
	c.sends = append(c.sends, p)
	c.mu.Unlock()
	return p
}

// take removes p from c's pending sends and says whether it was there
// (not yet answered). Callers hold c.mu.
func (c *Conn) take(p *pendingSend) bool {
	i := slices.Index(c.sends, p)
	if i < 0 {
		return false
	}
	c.sends = slices.Delete(c.sends, i, i+1)
	return true
}

// ownCopy returns what to write to c for its user's own msg: the frame,
// with the ack of the send it answers after it when that send is pending
// on c. Callers hold c.mu.
func (c *Conn) ownCopy(frame []byte, m *ownMsg) []byte {
	for _, p := range c.sends {
		if p.room != m.room || !bytes.HasPrefix(m.cid, p.cid) {
			continue
		}
		c.take(p)
		ack := p.ack
		if ack == nil {
			ack = ackFrame(p.cid, m.room, m.seq, m.ts)
		}
		c.hub.metrics.acks.WithLabelValues("with_msg").Inc()
		return append(append(make([]byte, 0, len(frame)+len(ack)), frame...), ack...)
	}
	return frame
}

// settle answers an accepted send p of c: nothing when the fanout wrote
// its ack with the msg already, else the ack now for a duplicate (no msg
// follows), else the ack parked for the msg.
func (h *Hub) settle(c *Conn, p *pendingSend, seq, ts int64, dup bool) {
	c.mu.Lock()
	switch {
	case c.closed || !slices.Contains(c.sends, p):
		c.mu.Unlock()
	case dup:
		c.take(p)
		h.metrics.acks.WithLabelValues("alone").Inc()
		c.writeLocked(ackFrame(p.cid, p.room, seq, ts))
	default:
		p.ack = ackFrame(p.cid, p.room, seq, ts)
		c.mu.Unlock()
		h.parked.add(c, p)
	}
}

// forget drops a send that was not accepted.
func (c *Conn) forget(p *pendingSend) {
	c.mu.Lock()
	c.take(p)
	c.mu.Unlock()
}

// parkedAcks writes the acks whose msg did not come within ackWait.
type parkedAcks struct {
	mu    sync.Mutex
	q     []parkedAck // oldest first
	timer *time.Timer
}

type parkedAck struct {
	c   *Conn
	p   *pendingSend
	due time.Time
}

func (pa *parkedAcks) add(c *Conn, p *pendingSend) {
	pa.mu.Lock()
	defer pa.mu.Unlock()
	pa.q = append(pa.q, parkedAck{c, p, time.Now().Add(ackWait)})
	if len(pa.q) > 1 {
		return // the timer is set for an older one
	}
	if pa.timer == nil {
		pa.timer = time.AfterFunc(ackWait, pa.expire)
		return
	}
	pa.timer.Reset(ackWait)
}

// expire writes the acks due by now that still wait, and sets the timer
// for the next.
func (pa *parkedAcks) expire() {
	now := time.Now()
	pa.mu.Lock()
	n := 0
	for n < len(pa.q) && !pa.q[n].due.After(now) {
		n++
	}
	due := append([]parkedAck(nil), pa.q[:n]...)
	pa.q = append(pa.q[:0], pa.q[n:]...)
	clear(pa.q[len(pa.q) : len(pa.q)+n])
	if len(pa.q) > 0 {
		pa.timer.Reset(pa.q[0].due.Sub(now))
	}
	pa.mu.Unlock()
	for _, a := range due {
		c := a.c
		c.mu.Lock()
		if c.closed || !c.take(a.p) {
			c.mu.Unlock()
			continue
		}
		c.hub.metrics.acks.WithLabelValues("alone").Inc()
		c.writeLocked(a.p.ack)
	}
}
