package main

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// syncPage is the most msg events one sync answer carries per room.
const syncPage = 500

// refState is what a client running as the protocol's reference client
// (docs/PROTOCOL.md section 5, -reconnect) keeps: the sends not yet acked,
// the room's contiguous seq and the sync in flight. Each client is in one
// room, so one sync state is enough.
type refState struct {
	pmu     sync.Mutex
	pending map[string][]byte // cid → the send's JSON, until acked or refused for good

	// lastSeq: every seq 1..lastSeq has reached the client. Written by
	// the reader, read by timers and the drain.
	lastSeq atomic.Int64
	// warmSeq is the warm-up message's seq, which recv does not count
	// (reader only).
	warmSeq int64
	// gaps are the seq ranges sync reported as gaps, which never arrive
	// (reader only).
	gaps [][2]int64

	// busyDue counts the sends refused as busy and not yet resent (their
	// waits, then their writes): the client sends nothing new while any
	// is, so each resend is the connection's first send after its wait,
	// which the server takes on its turn. A new send slipping in first
	// (the pacer finding the user free once the wait ended, before the
	// resend's timer fired) took that turn and left the resend to be
	// refused again.
	busyDue atomic.Int32

	smu      sync.Mutex
	syncing  bool
	syncFrom int64
}

func newRefState() *refState { return &refState{pending: map[string][]byte{}} }

func (r *refState) addPending(cid string, payload []byte) {
	r.pmu.Lock()
	r.pending[cid] = payload
	r.pmu.Unlock()
}

// takePending drops cid from the pending sends, reporting whether it was
// there (an ack for a cid already acked is not).
func (r *refState) takePending(cid string) bool {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	_, ok := r.pending[cid]
	delete(r.pending, cid)
	return ok
}

func (r *refState) pendingCount() int {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	return len(r.pending)
}

func (r *refState) isSyncing() bool {
	r.smu.Lock()
	defer r.smu.Unlock()
	return r.syncing
}

// advance moves lastSeq over the seqs received so far and asks for a
// sync when seq lies past a gap (reader only).
func (r *refState) advance(c *client, seq int64) {
	last := r.lastSeq.Load()
	for {
		if to := r.gapAt(last + 1); to > 0 {
			last = to
			continue
		}
		if c.count(last+1) == 0 && last+1 != r.warmSeq {
			break
		}
		last++
	}
	r.lastSeq.Store(last)
	if seq > last+1 {
		c.requestSync()
	}
}

// gap records seqs from..to that a sync reported lost: they are skipped
// as received (docs/PROTOCOL.md section 5), or the client would sync
// from below them forever (reader only).
func (r *refState) gap(c *client, from, to int64) {
	if from < 1 || to < from {
		return
	}
	r.gaps = append(r.gaps, [2]int64{from, to})
	c.st.gaps.Add(1)
	r.advance(c, 0)
}

// gapAt is the end of the reported gap holding seq, 0 when none does.
func (r *refState) gapAt(seq int64) int64 {
	for _, g := range r.gaps {
		if g[0] <= seq && seq <= g[1] {
			return g[1]
		}
	}
	return 0
}

// synced ends the sync in flight: a full page means more to fetch; a gap
// still open after a short page is retried after a second.
func (r *refState) synced(c *client, seq int64) {
	r.smu.Lock()
	from := r.syncFrom
	r.syncing = false
	r.smu.Unlock()
	switch {
	case seq-from >= syncPage:
		c.requestSync()
	case c.maxSeen > r.lastSeq.Load():
		time.AfterFunc(time.Second, c.requestSync)
	}
}

// refused handles an error frame; it reports whether the frame is dealt
// with: a send refused as busy is resent with the same cid after the
// retry_after_ms the server named, and the client sends nothing new
// until it has been (a node past its capacity takes no more from it,
// and takes the resend on its turn, docs/PROTOCOL.md); one
// refused as unavailable or rate_limited is resent after half a second;
// a failed sync is retried after a second. Other refusals of a send are
// final.
func (r *refState) refused(c *client, f frame) bool {
	if f.CID != "" {
		r.pmu.Lock()
		_, ok := r.pending[f.CID]
		if ok && f.Code != "unavailable" && f.Code != "rate_limited" && f.Code != "busy" {
			delete(r.pending, f.CID)
			ok = false
		}
		r.pmu.Unlock()
		if !ok {
			return false
		}
		c.st.refused.Add(1)
		if f.Code != "busy" {
			time.AfterFunc(500*time.Millisecond, func() { c.resend(f.CID, f.Code) })
			return true
		}
		c.st.busy.Add(1)
		wait := time.Duration(max(f.RetryAfterMS, 1)) * time.Millisecond
		r.busyDue.Add(1)
		time.AfterFunc(wait, func() {
			c.resend(f.CID, f.Code)
			r.busyDue.Add(-1)
		})
		return true
	}
	if f.Room == c.room.id {
		r.smu.Lock()
		r.syncing = false
		r.smu.Unlock()
		if f.Code == "unavailable" {
			time.AfterFunc(time.Second, c.requestSync)
		}
		return true
	}
	return false
}

// held reports whether a send of this client refused as busy is still
// to be resent: the pacer gives its sends to other users.
func (c *client) held() bool { return c.ref != nil && c.ref.busyDue.Load() > 0 }

// requestSync asks for the room from lastSeq unless a sync is in flight.
// A write that fails leaves the drop to the reader, whose reconnect syncs.
func (c *client) requestSync() {
	r := c.ref
	if c.st.closing.Load() {
		return
	}
	r.smu.Lock()
	if r.syncing {
		r.smu.Unlock()
		return
	}
	from := r.lastSeq.Load()
	r.syncing, r.syncFrom = true, from
	r.smu.Unlock()
	p := []byte(`{"type":"sync","rooms":{"`)
	p = strconv.AppendInt(p, c.room.id, 10)
	p = append(p, `":`...)
	p = strconv.AppendInt(p, from, 10)
	p = append(p, `}}`...)
	c.st.syncs.Add(1)
	if err := c.writeRaw(appendClientFrame(nil, ws.OpText, p)); err != nil {
		r.smu.Lock()
		r.syncing = false
		r.smu.Unlock()
	}
}

// resend writes a pending send again, same cid, if it is still pending,
// after a refusal with code. A send refused as busy was not stored, so
// its body's send time is set to now: recipients then measure the
// delivery of the send the server took, while the ack's latency (from
// the cid's time) still counts the whole wait. One answered unavailable
// may have been stored all the same (Redis failed mid-call), so it goes
// marked as a resend.
func (c *client) resend(cid, code string) {
	c.ref.pmu.Lock()
	p, ok := c.ref.pending[cid]
	if ok && code == "busy" {
		stampBody(p, time.Now().UnixNano())
	}
	if ok && code == "unavailable" {
		p = markedResend(p)
	}
	if ok {
		p = appendClientFrame(nil, ws.OpText, p)
	}
	c.ref.pmu.Unlock()
	if !ok || c.st.closing.Load() || c.dead.Load() {
		return // acked meanwhile, or the reconnect resends it
	}
	c.st.resends.Add(1)
	_ = c.writeRaw(p)
}

// markedResend is a pending send's JSON marked as a resend: its earlier
// attempt may have been accepted (the connection dropped before the
// answer came, or the answer was unavailable), and the server looks its
// cid up in the message store once Redis has forgotten it
// (docs/PROTOCOL.md, idempotent sends).
func markedResend(p []byte) []byte {
	return append([]byte(`{"resend":true,`), p[1:]...)
}

// stampBody overwrites the send time in a generator send's body
// ("body":"lg <unixNano> …) with now, in place, when both have the same
// number of digits (always, until the year 2286).
func stampBody(p []byte, now int64) {
	i := bytes.Index(p, lgBodyKey)
	if i < 0 {
		return
	}
	at := p[i+len(lgBodyKey):]
	if _, n := leadingInt(at); n > 0 {
		if d := strconv.AppendInt(nil, now, 10); len(d) == n {
			copy(at, d)
		}
	}
}

// reconnect redials after a drop: the next -url each attempt, after a
// jittered backoff from 100 ms to 2 s; then syncs the room from lastSeq
// and resends every pending send with its cid. It reports false when the
// stage closed first.
func (c *client) reconnect() bool {
	st := c.st
	for attempt := 1; ; attempt++ {
		wait := time.Duration(float64(min(2*time.Second, 100*time.Millisecond<<min(attempt-1, 5))) * (0.5 + rand.Float64()))
		select {
		case <-time.After(wait):
		case <-st.stopped:
			return false
		}
		conn, br, err := st.lg.dial(st.ctx, c, c.home+attempt)
		if err != nil {
			st.redialFailures.Add(1)
			st.logOnce("redial", "user %s: redial attempt %d: %v", c.acct.name, attempt, err)
			continue
		}
		if !c.install(conn, br) {
			return false
		}
		break
	}
	st.reconnects.Add(1)
	c.maxSeen = 0 // order is per connection
	r := c.ref
	r.smu.Lock()
	r.syncing = false // the old connection's sync died with it
	r.smu.Unlock()
	c.requestSync()
	r.pmu.Lock()
	frames := make([][]byte, 0, len(r.pending))
	for _, p := range r.pending {
		frames = append(frames, appendClientFrame(nil, ws.OpText, markedResend(p)))
	}
	r.pmu.Unlock()
	for _, f := range frames {
		st.resends.Add(1)
		_ = c.writeRaw(f)
	}
	c.dead.Store(false)
	return true
}
