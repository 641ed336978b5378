package hub

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Conn is one client WebSocket. While idle it holds no goroutine and no
// read buffer: the poller hands it to a worker when bytes arrive, and
// writes go straight to the socket unless the client is slow.
type Conn struct {
	id   uint64
	fd   int
	user int64
	name string
	// token is what the connection authenticated with, checked again
	// when the user's tokens change.
	token string
	tcp   *net.TCPConn
	raw   rawConn
	hub   *Hub

	// Read side: touched only by the one goroutine handling c's
	// readiness (a worker, or the poller's own: handleHere). readMu is
	// never contended (claim hands c to one at a time); it tells the race
	// detector and the memory model that the next one sees what the last
	// one left.
	ready   atomic.Int32 // readIdle, readHandled or readAgain
	readMu  sync.Mutex
	rsys    syscalls
	pending []byte   // a partial frame, or frames left to a worker; nil when idle
	later   *inbound // a message the poller's goroutine left to a worker
	message []byte   // fragments of a message being reassembled
	inFrag  bool
	bucket  tokenBucket
	turn    int64 // admission's busyTurn: when a busy refusal's wait ends

	lastRead atomic.Int64 // unix nanoseconds of the last frame received

	// Write side. One writer at a time: the caller of write when nothing
	// is held or queued, the gatherer for what is held, or the flusher
	// goroutine of a slow connection. Nothing is held while flushing.
	mu   sync.Mutex
	wsys syscalls
	// held is what write kept back while the node is behind, for the
	// gatherer to write in one go; nil when nothing is held.
	held  [][]byte
	queue [][]byte
	// queued counts the bytes held or queued.
	queued   int
	flushing bool
	closed   bool
	// sends are this connection's sends awaiting their ack (ack.go).
	sends []*pendingSend
}

// statusTryAgainLater (1013) closes a client that reads too slowly; gobwas
// does not name it.
const statusTryAgainLater ws.StatusCode = 1013

// write sends one compiled frame. It never blocks on a slow client: what
// the socket does not take is queued for a flusher goroutine, and a client
// whose queue passes the limit is closed with 1013. While the node is
// behind, and after, until what it held is written, the frame is held for
// the gatherer instead (gatherDelay).
func (c *Conn) write(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.writeLocked(frame)
}

// writeOwn writes the user's own msg to c, with the ack of the send it
// answers when that is pending on c (ack.go).
func (c *Conn) writeOwn(frame []byte, m *ownMsg) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.writeLocked(c.ownCopy(frame, m))
}

// writeLocked is write for a caller holding c.mu on an open c; it
// releases c.mu.
func (c *Conn) writeLocked(frame []byte) {
	hold := !c.flushing && (c.held != nil || c.hub.adm.behind())
	if !c.flushing && !hold {
		n, err := c.writeNow(frame)
		c.wrote(frame, n, err)
		return
	}
	c.enqueue(frame, hold)
}

// wrote finishes a write of which the socket took n bytes: the rest is
// queued for the flusher. Callers hold c.mu; wrote releases it.
func (c *Conn) wrote(frame []byte, n int, err error) {
	if err != nil {
		c.mu.Unlock()
		c.hub.drop(c, err)
		return
	}
	if n == len(frame) {
		c.mu.Unlock()
		return
	}
	c.enqueue(frame[n:], false)
}

// enqueue holds or queues frame. Callers hold c.mu; enqueue releases it.
func (c *Conn) enqueue(frame []byte, hold bool) {
	if c.queued+len(frame) > c.hub.cfg.WriteQueueBytes {
		c.mu.Unlock()
		c.hub.metrics.slowCloses.Inc()
		c.hub.closeConn(c, statusTryAgainLater, "too slow reading messages")
		return
	}
	c.queued += len(frame)
	switch {
	case hold:
		if c.held == nil {
			c.hub.gather.add(c, time.Now())
		}
		c.held = append(c.held, frame)
		c.hub.metrics.framesHeld.Inc()
	default:
		c.queue = append(c.queue, frame)
		if !c.flushing {
			c.flushing = true
			go c.flush()
		}
	}
	c.mu.Unlock()
}

// flush drains the queue with blocking writes through Go's poller; it
// runs only while a client is behind.
func (c *Conn) flush() {
	for {
		c.mu.Lock()
		q := c.queue
		c.queue, c.queued = nil, 0
		if len(q) == 0 || c.closed {
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		_ = c.tcp.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
		for _, b := range q {
			if _, err := c.tcp.Write(b); err != nil {
				c.mu.Lock()
				c.flushing = false
				c.mu.Unlock()
				c.hub.drop(c, err)
				return
			}
		}
		_ = c.tcp.SetWriteDeadline(time.Time{})
	}
}

// tokenBucket limits how fast one connection may send messages.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) allow(now time.Time, rate float64, burst int) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// What Conn.ready says of a connection's readiness: no goroutine handles
// it; one does; one does and more bytes arrived since it began.
const (
	readIdle int32 = iota
	readHandled
	readAgain
)

// claim says whether the caller, told that c is readable, is the one to
// handle it; if another goroutine handles it already, claim tells that
// one to read again before letting c go (release).
func (c *Conn) claim() bool {
	for {
		switch c.ready.Load() {
		case readIdle:
			if c.ready.CompareAndSwap(readIdle, readHandled) {
				return true
			}
		case readHandled:
			if c.ready.CompareAndSwap(readHandled, readAgain) {
				return false
			}
		default:
			return false
		}
	}
}

// release lets c go after its handler drained it, unless bytes arrived
// meanwhile: then it says to read again, and c stays the caller's.
func (c *Conn) release() bool {
	if c.ready.CompareAndSwap(readHandled, readIdle) {
		return false
	}
	c.ready.Store(readHandled)
	return true
}
