package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stage is one step of users and rate: its rooms, connections and counts.
type stage struct {
	n    int
	spec stageSpec
	o    *options
	lg   *loadgen
	ctx  context.Context

	clients []*client
	rooms   []*room

	readers sync.WaitGroup
	// rx are the loops that read the clients' sockets (stage.read), made
	// once by rxOnce; nil where there are none.
	rx      []*rxLoop
	rxOnce  sync.Once
	closing atomic.Bool
	stopped chan struct{} // closed with closing, ends reconnect backoffs

	sent         atomic.Int64
	notSent      atomic.Int64
	acked        atomic.Int64
	failedSends  atomic.Int64 // error frames answering one of our sends
	delivered    atomic.Int64
	expectedLive atomic.Int64 // acked × members, as acks arrive
	foreign      atomic.Int64
	outOfOrder   atomic.Int64 // live msgs with a lower seq than one before on the connection
	errs         errorCounts

	// The reference client's work (-reconnect).
	reconnects     atomic.Int64
	redialFailures atomic.Int64
	refused        atomic.Int64 // sends refused as unavailable, rate_limited or busy, to be resent
	busy           atomic.Int64 // of those, refused as busy
	resends        atomic.Int64
	syncs          atomic.Int64
	gaps           atomic.Int64 // gap frames received
	lateAcks       atomic.Int64 // acks of a cid already acked

	// Mentions (-mentions): bodies naming a member, and those delivered
	// back to their sender with the node's resolved mentions.
	mentionsSent, mentionsResolved atomic.Int64

	fault    faultWindow
	timeline []timelinePoint // progress goroutine only

	warmDelivered atomic.Int64
	warmErrs      errorCounts
	warmLat       *histogram

	lat, ackLat *histogram
	// socketLat is lat up to the generator's socket (receivedAt).
	socketLat *histogram
	live      atomic.Pointer[histogram] // this second's delivery latencies
	spare     *histogram

	sendStart time.Time    // set before pace and progress start
	sendEnd   atomic.Int64 // unix nanoseconds; 0 while sending

	logMu  sync.Mutex
	logged map[string]int
	// storm is the probes' state of a -storm stage, else nil.
	storm *stormState
}

// newStage groups accts into rooms of -room-size; each room also gets
// the next -push-away of away.
func newStage(ctx context.Context, lg *loadgen, n int, spec stageSpec, accts, away []*account) *stage {
	o := lg.o
	st := &stage{n: n, spec: spec, o: o, lg: lg, ctx: ctx, stopped: make(chan struct{}),
		lat: newHistogram(), ackLat: newHistogram(), socketLat: newHistogram(), spare: newHistogram(), warmLat: newHistogram(), logged: map[string]int{}}
	st.fault.lat = newHistogram()
	st.live.Store(newHistogram())
	st.clients = make([]*client, len(accts))
	for i, a := range accts {
		st.clients[i] = &client{st: st, acct: a}
		if o.reconnect {
			st.clients[i].ref = newRefState()
		}
		if o.target == "centrifugo" {
			st.clients[i].cf = newCFState()
		}
	}
	for i := 0; i < len(accts); i += o.roomSize {
		r := &room{members: st.clients[i:min(i+o.roomSize, len(accts))], warm: make(chan frame, 4),
			seqOf: map[string]int64{}, conflicts: map[string]bool{}}
		for _, c := range r.members {
			c.room = r
		}
		if k := len(st.rooms) * o.pushAway; k < len(away) {
			r.away = away[k:min(k+o.pushAway, len(away))]
		}
		st.rooms = append(st.rooms, r)
	}
	return st
}

// logOnce logs the first few occurrences of each kind of trouble.
func (st *stage) logOnce(key, format string, args ...any) {
	st.logMu.Lock()
	st.logged[key]++
	n := st.logged[key]
	st.logMu.Unlock()
	switch {
	case n <= 3:
		logf(format, args...)
	case n == 4:
		logf("(more %q events are counted but not logged)", key)
	}
}

// closeAll ends every connection and waits for the readers.
func (st *stage) closeAll() {
	if st.closing.Swap(true) {
		return
	}
	close(st.stopped)
	for _, c := range st.clients {
		c.wmu.Lock()
		if c.conn != nil {
			_ = c.conn.Close()
		}
		c.wmu.Unlock()
	}
	st.closeReaders()
	st.readers.Wait()
}

// pace sends at the stage's rate for the duration: one pacer goroutine
// computes how many sends are due from the elapsed time (so a late tick
// catches up rather than drifts) and hands senders, round-robin over a
// shuffled order of all users, to a pool of writer goroutines. Sends not
// written before the window closes are counted as not sent.
func (st *stage) pace(ctx context.Context) {
	jobs := make(chan *client, 4096)
	start := st.sendStart
	end := start.Add(st.o.duration)
	// A send handed out before the end may be written a little after it;
	// later than this it is a catch-up the window has no room for.
	late := end.Add(100 * time.Millisecond)
	// The k-th send (from 0) is due at k/rate: ceil(duration·rate) in all.
	total := int64(math.Ceil(st.o.duration.Seconds()*st.spec.rate - 1e-9))
	pad := []byte(strings.Repeat("x", 4000))
	var seq atomic.Uint64
	var wg sync.WaitGroup
	for range st.o.senders {
		wg.Go(func() {
			s := &sender{pad: pad}
			for c := range jobs {
				if time.Now().After(late) {
					st.notSent.Add(1)
					continue
				}
				if c.dead.Load() {
					st.notSent.Add(1)
					continue
				}
				if err := c.send(s, seq.Add(1)); err != nil {
					// A reference client's send stays pending: its
					// reader notices the drop, redials and resends.
					if c.ref == nil && !c.dead.Swap(true) {
						st.errs.add("write")
						st.logOnce("write", "user %s: write: %v", c.acct.name, err)
					}
					if c.ref == nil {
						continue
					}
				}
				st.sent.Add(1)
				st.fault.countSend()
			}
		})
	}
	order := rand.Perm(len(st.clients))
	next := 0
	// pick is the next user who is connected and not told to wait
	// (busy); nil when there is none.
	pick := func() *client {
		for range len(order) {
			c := st.clients[order[next]]
			next = (next + 1) % len(order)
			if !c.dead.Load() && !c.held() {
				return c
			}
		}
		return nil
	}
	allDead := func() bool {
		for _, c := range st.clients {
			if !c.dead.Load() {
				return false
			}
		}
		return true
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	endTimer := time.NewTimer(time.Until(end))
	defer endTimer.Stop()
	var issued int64
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-endTimer.C:
			break loop
		case now := <-tick.C:
			if !now.Before(end) {
				break loop
			}
			due := min(total, int64(now.Sub(start).Seconds()*st.spec.rate)+1)
			for issued < due {
				c := pick()
				if c == nil && allDead() {
					logf("stage %d: every connection is dead; stopping", st.n)
					break loop
				}
				if c == nil {
					// Every user waits out a busy refusal: so does the
					// rest of this tick's sends, without a scan each.
					st.notSent.Add(due - issued)
					issued = due
					break
				}
				select {
				case jobs <- c:
					issued++
				case <-endTimer.C:
					break loop
				case <-ctx.Done():
					break loop
				}
			}
		}
	}
	// The last ticks may coalesce with the end: hand out what was due by
	// then, unless that is a backlog the grace period cannot absorb.
	if ctx.Err() == nil && total-issued <= int64(st.spec.rate/100)+1 {
		for ; issued < total; issued++ {
			c := pick()
			if c == nil {
				break
			}
			jobs <- c
		}
	}
	// Due but never handed out counts as not sent too.
	if due := min(total, int64(time.Since(start).Seconds()*st.spec.rate)+1); due > issued {
		st.notSent.Add(due - issued)
	}
	close(jobs)
	wg.Wait()
	st.sendEnd.Store(time.Now().UnixNano())
}

func (st *stage) sendEndTime() time.Time { return time.Unix(0, st.sendEnd.Load()) }

// progress prints a line every second on stderr until stop closes.
func (st *stage) progress(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSent, lastAcked, lastDel, lastErr int64
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			h := st.live.Swap(st.spare)
			p99 := h.quantiles(0.99)[0]
			n := h.n.Load()
			h.reset()
			st.spare = h
			sent, acked, del, errs := st.sent.Load(), st.acked.Load(), st.delivered.Load(), st.errs.total.Load()
			phase := "send"
			var el time.Duration
			if st.sendEnd.Load() == 0 {
				el = now.Sub(st.sendStart)
			} else {
				phase = "drain"
				el = max(0, now.Sub(st.sendEndTime()))
			}
			behind := ""
			if phase == "send" && el > 1500*time.Millisecond {
				if r := float64(sent - lastSent); r < 0.95*st.spec.rate {
					behind = fmt.Sprintf("  behind: %.0f/s of %g/s", r, st.spec.rate)
				}
			}
			lat := "-"
			if n > 0 {
				lat = fmtMS(ms(p99))
			}
			fault := ""
			if st.fault.active() {
				fault = "  [fault window]"
			}
			fmt.Fprintf(stderr, "[stage %d %s %3.0fs] sent %d (+%d) acked %d (+%d) delivered %d (+%d) errors %d (+%d) p99 %s%s%s\n",
				st.n, phase, el.Seconds(), sent, sent-lastSent, acked, acked-lastAcked, del, del-lastDel, errs, errs-lastErr, lat, behind, fault)
			if st.o.timeline {
				st.timeline = append(st.timeline, timelinePoint{
					T: round2(now.Sub(st.sendStart).Seconds()), Sent: sent - lastSent, Acked: acked - lastAcked,
					Delivered: del - lastDel, Errors: errs - lastErr, P99MS: ms(p99), Fault: st.fault.active(),
				})
			}
			lastSent, lastAcked, lastDel, lastErr = sent, acked, del, errs
		}
	}
}

// drain waits up to -drain for stragglers: until every send is answered
// (ack or error) and every acked message reached every member. It reports
// how long it waited and whether it got there: what a drain that ran
// out left in flight, the stage counts as lost.
func (st *stage) drain(ctx context.Context) (time.Duration, bool) {
	start := time.Now()
	deadline := st.sendEndTime().Add(st.o.drain)
	for {
		if st.drained() {
			return time.Since(start), true
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drained reports whether every send is answered and every acked message
// reached every member (reference clients: caughtUp).
func (st *stage) drained() bool {
	if st.o.reconnect {
		return st.caughtUp()
	}
	return st.acked.Load()+st.failedSends.Load() >= st.sent.Load() && st.delivered.Load() >= st.expectedLive.Load()
}

// caughtUp reports whether every reference client is connected, has no
// send pending and has every seq up to its room's highest acked one.
func (st *stage) caughtUp() bool {
	for _, c := range st.clients {
		if c.dead.Load() || c.ref.pendingCount() > 0 || c.ref.lastSeq.Load() < c.room.maxAcked.Load() {
			return false
		}
	}
	return true
}

// ackedSeqs is the set of seqs acked in each room, from every member's
// acks (only the sender gets an ack; on Centrifugo an ack names no offset,
// so the deliveries tell it).
func (st *stage) ackedSeqs() map[*room][]int64 {
	out := make(map[*room][]int64, len(st.rooms))
	for _, r := range st.rooms {
		var seqs []int64
		var unseen int64
		for _, m := range r.members {
			seqs = append(seqs, m.acks...)
			if m.cf != nil {
				seqs = m.cf.ackedSeqs(r, seqs, &unseen)
			}
		}
		out[r] = seqs
	}
	return out
}

// evaluate counts, once the readers stopped, what every member got of
// every acked message.
func (st *stage) evaluate(res *result, acked map[*room][]int64) {
	for _, r := range st.rooms {
		seqs := acked[r]
		isAcked := make(map[int64]bool, len(seqs))
		for _, s := range seqs {
			isAcked[s] = true
		}
		for _, m := range r.members {
			res.Expected += int64(len(isAcked))
			for s := range isAcked {
				switch n := m.count(s); {
				case n == 0:
					res.Lost++
					if m.dropped.Load() {
						res.LostDropped++
					}
				case n > 1:
					res.Duplicates += int64(n - 1)
				}
			}
			// Deliveries of messages whose ack never came.
			for s, n := range m.recv {
				if n > 0 && !isAcked[int64(s)] {
					res.UnackedReceived += int64(n)
					res.Duplicates += int64(n - 1)
				}
			}
			for s, n := range m.extra {
				if !isAcked[s] {
					res.UnackedReceived += int64(n)
					res.Duplicates += int64(n - 1)
				}
			}
		}
	}
	for _, r := range st.rooms {
		res.DuplicateMessages += int64(len(r.conflicts))
	}
	// Sends neither acked nor refused with an error frame.
	if missing := st.sent.Load() - st.acked.Load() - st.failedSends.Load(); missing > 0 {
		st.errs.addN("no_ack", missing)
	}
}
