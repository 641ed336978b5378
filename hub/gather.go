package hub

import (
	"context"
	"sync"
	"time"
)

// gatherDelay is how long a frame written while the node is behind waits
// for others to the same connection, so that they go out in one writev.
// A write(2) per frame per recipient was half the node's CPU past
// capacity, and at one message a second per user in rooms of 10 a
// connection gets about ten frames a second, two frames rarely close
// enough to share a write; held 150 ms, a write carries about two and a
// half. A node within its capacity holds nothing: at its own pace the
// delay would be most of a delivery's latency.
const gatherDelay = 150 * time.Millisecond

// iovMax is the most buffers one writev takes (Linux's IOV_MAX); what a
// connection holds past it goes to its flusher.
const iovMax = 1024

// gatherer writes the frames connections hold while the node is behind
// (Conn.write), each connection's in one writev gatherDelay after its
// first: connections are due in the order they started holding, so one
// goroutine keeps them in a queue and sleeps until the first is due.
type gatherer struct {
	adm *admission
	mu  sync.Mutex
	// due is the connections holding frames, the earliest first, from
	// head on.
	due  []dueConn
	head int
	wake chan struct{}
}

type dueConn struct {
	c  *Conn
	at int64 // unix ns
}

func newGatherer(adm *admission) *gatherer {
	return &gatherer{adm: adm, wake: make(chan struct{}, 1)}
}

// add queues c, which has just started holding frames at now.
func (g *gatherer) add(c *Conn, now time.Time) {
	g.mu.Lock()
	g.due = append(g.due, dueConn{c, now.Add(gatherDelay).UnixNano()})
	first := len(g.due)-g.head == 1
	g.mu.Unlock()
	if first {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

// run writes connections' held frames as they fall due, until ctx ends.
// How late it gets to them is lag admission counts, as the fan-out's.
func (g *gatherer) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var batch []*Conn
	for {
		now := time.Now().UnixNano()
		var next, late int64
		batch, next, late = g.take(batch[:0], now)
		if len(batch) > 0 {
			g.adm.observe(time.Duration(late))
			for i, c := range batch {
				c.writeHeld()
				batch[i] = nil
			}
			continue
		}
		wait := time.Hour
		if next > 0 {
			wait = time.Duration(next - now)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.wake:
		}
	}
}

// take moves the connections due by now into batch, and says when the
// next one is due (0: none waiting) and how late the first taken is.
func (g *gatherer) take(batch []*Conn, now int64) (_ []*Conn, next, late int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.head < len(g.due) {
		d := g.due[g.head]
		if d.at > now {
			next = d.at
			break
		}
		if len(batch) == 0 {
			late = now - d.at
		}
		batch = append(batch, d.c)
		g.due[g.head] = dueConn{}
		g.head++
	}
	switch {
	case g.head == len(g.due):
		g.due, g.head = g.due[:0], 0
	case g.head > len(g.due)/2:
		n := copy(g.due, g.due[g.head:])
		clear(g.due[n:])
		g.due, g.head = g.due[:n], 0
	}
	return batch, next, late
}

// writeHeld writes what c holds in one writev; what the socket does not
// take goes to c's flusher, as a write's rest does.
func (c *Conn) writeHeld() {
	c.mu.Lock()
	held := c.held
	c.held, c.queued = nil, 0
	if c.closed || len(held) == 0 {
		c.mu.Unlock()
		return
	}
	n, err := c.writevNow(held[:min(len(held), iovMax)])
	if err != nil {
		c.mu.Unlock()
		c.hub.drop(c, err)
		return
	}
	for len(held) > 0 && n >= len(held[0]) {
		n -= len(held[0])
		held = held[1:]
	}
	if len(held) > 0 {
		held[0] = held[0][n:]
		for _, b := range held {
			c.queue = append(c.queue, b)
			c.queued += len(b)
		}
		c.flushing = true
		go c.flush()
	}
	c.mu.Unlock()
}
