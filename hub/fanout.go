package hub

import (
	"bytes"
	"syscall"
	"time"

	"moim/internal/rawio"
)

// fanout delivers room events, on one goroutine at a time. On Redis each
// pub/sub shard has its own, on its receiving goroutine: a room's channel
// lives on one shard, so its events stay in order, and no hand-off to
// another goroutine sits between Redis and the sockets. On the
// single-node engine each deliverer has one, and the committer one.
type fanout struct {
	h       *Hub
	targets []*Conn
	// ring writes an event to the sockets that take it at once in one
	// system call (rawio.Ring); nil until the first event for two or more
	// sockets, and for good once it could not be set up or failed.
	ring   *rawio.Ring
	noRing bool
	// Scratch for write: the connections whose locks it holds, their
	// descriptors and what each gets, and those left to Conn.write.
	batch []*Conn
	fds   []int32
	bufs  [][]byte
	later []*Conn
}

// deliver frames an event once and writes the same bytes to every local
// connection in the room.
func (f *fanout) deliver(room int64, payload []byte) {
	f.deliverFrame(room, textFrame(payload))
}

// deliverFrame writes an event's text frame to every local connection in
// the room.
func (f *fanout) deliverFrame(room int64, frame []byte) {
	h := f.h
	payload := framePayload(frame)
	h.mu.RLock()
	f.targets = f.targets[:0]
	for c := range h.rooms[room] {
		f.targets = append(f.targets, c)
	}
	h.mu.RUnlock()
	own := parseOwn(room, payload)
	f.write(frame, &own)
	h.metrics.framesOut.Add(float64(len(f.targets)))
	if bytes.HasPrefix(payload, msgPrefix) {
		h.metrics.deliveries.Add(float64(len(f.targets)))
		if ts := acceptedAt(payload); ts > 0 {
			lag := time.Since(time.UnixMilli(ts))
			h.metrics.latency.Observe(lag.Seconds())
			h.adm.observe(lag)
		}
	}
}

// write writes frame to f.targets: through the ring while f has one,
// RingSize at a time (writeBatch), and one by one as Conn.write does
// otherwise, or once the ring failed. A msg's sender gets the ack of the
// send on the same write (ack.go).
func (f *fanout) write(frame []byte, own *ownMsg) {
	rest := f.targets
	if len(rest) > 1 && f.ringReady() {
		behind := f.h.adm.behind()
		for len(rest) > 0 && f.ring != nil {
			rest = f.writeBatch(frame, own, rest, behind)
		}
	}
	for _, c := range rest {
		writeTo(c, frame, own)
	}
}

// writeTo writes frame to c as Conn.write does, with its ack for the
// sender's connection.
func writeTo(c *Conn, frame []byte, own *ownMsg) {
	if own.sentBy(c) {
		c.writeOwn(frame, own)
		return
	}
	c.write(frame)
}

// writeBatch writes frame to the first RingSize connections of targets
// and returns the others. Those free to take it at once (not flushing,
// nothing held, the node not behind) get it through the ring, their
// locks held meanwhile; the rest, and any whose lock another writer
// holds, through Conn.write after them. TryLock keeps two fanouts that
// share connections from waiting on each other's locks while holding
// their own.
func (f *fanout) writeBatch(frame []byte, own *ownMsg, targets []*Conn, behind bool) []*Conn {
	batch, fds, bufs, later := f.batch[:0], f.fds[:0], f.bufs[:0], f.later[:0]
	for len(targets) > 0 && len(batch) < rawio.RingSize {
		c := targets[0]
		targets = targets[1:]
		if c.mu.TryLock() {
			if !c.closed && !c.flushing && c.held == nil && !behind {
				batch = append(batch, c)
				fds = append(fds, int32(c.fd))
				b := frame
				if own.sentBy(c) {
					b = c.ownCopy(frame, own)
				}
				bufs = append(bufs, b)
				continue
			}
			c.mu.Unlock()
		}
		later = append(later, c)
	}
	res, err := f.ring.Send(fds, bufs)
	if err != nil {
		f.h.log.Warn("io_uring failed: its batch's connections are dropped, and this fanout writes one by one from now on", "err", err)
		f.closeRing()
	}
	for i, c := range batch {
		if err != nil {
			// What the failed call sent is unknown: a socket may hold
			// part of the frame, so no later frame could follow it.
			c.wrote(bufs[i], 0, err)
			continue
		}
		var n int
		var werr error
		switch r := res[i]; {
		case r >= 0:
			n = int(r)
		case r != -int32(syscall.EAGAIN):
			werr = syscall.Errno(-r)
		}
		c.wrote(bufs[i], n, werr)
	}
	for _, c := range later {
		writeTo(c, frame, own)
	}
	clear(batch)
	clear(bufs)
	clear(later)
	f.batch, f.fds, f.bufs, f.later = batch[:0], fds[:0], bufs[:0], later[:0]
	return targets
}

// ringReady sets up f's ring on first use and says whether f has one.
func (f *fanout) ringReady() bool {
	if f.ring != nil {
		return true
	}
	if f.noRing || f.h.cfg.PlainWrites {
		return false
	}
	r, err := rawio.NewRing()
	if err != nil {
		f.noRing = true
		f.h.ringless.Do(func() {
			f.h.log.Info("io_uring unavailable; socket writes go one by one", "err", err)
		})
		return false
	}
	f.ring = r
	return true
}

// closeRing releases f's ring, if any, for good: call it when f's
// goroutine ends.
func (f *fanout) closeRing() {
	if f.ring != nil {
		_ = f.ring.Close()
		f.ring = nil
	}
	f.noRing = true
}
