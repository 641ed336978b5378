package hub

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moim/chatlog"
)

// Log is the durable message log under a MemoryBroker (store.SQLite): the
// message log is the store, so a message is acknowledged only once its
// row is committed.
type Log interface {
	// Commit runs a batch in one transaction, giving each new draft the
	// room's next seq and each retried (user, cid) its original one.
	Commit(ctx context.Context, b *chatlog.Batch) error
	// MaxSeq is the highest committed seq of room, 0 when none.
	MaxSeq(ctx context.Context, room int64) (int64, error)
	// Before returns up to limit messages before seq (0: the newest),
	// newest first.
	Before(ctx context.Context, room, seq int64, limit int) ([][]byte, error)
	// ReadPositions is every member's read position in room.
	ReadPositions(ctx context.Context, room int64) (map[int64]int64, error)
	// Tidy does work the log defers (SQLite: moving rooms' messages from
	// its journals into its messages table); the broker calls it every
	// few milliseconds from a goroutine of its own, beside Commit.
	Tidy(ctx context.Context) error
}

// Members answers membership from memory (rooms keeps it current).
type Members interface {
	Has(room, user int64) bool
}

// MemoryConfig tunes a MemoryBroker. Zero fields take the defaults in
// brackets.
type MemoryConfig struct {
	// RecentLen is how many of each room's newest messages stay in memory
	// for sync and history [1000]; older ones are read from the log.
	RecentLen int
	// MaxBatch caps the operations one commit carries [1024]. There is no
	// wait to fill a batch: what queued during the last commit goes in the
	// next, so an idle node commits each message at once and a busy one
	// commits many per transaction.
	MaxBatch int
	// Deliverers is how many goroutines write room events to sockets
	// [4 × GOMAXPROCS: a write can wait on the kernel]; a room is always
	// delivered by the same one, in order.
	Deliverers int
}

// MemoryBroker is the single-node engine: seqs, the recent window, read
// positions, presence and delivery live in memory, and every message,
// deletion and read position is committed to the node's log, many per
// transaction, before it is acknowledged. It has no network hop.
type MemoryBroker struct {
	log     Log
	members Members
	cfg     MemoryConfig

	ops chan *memOp
	// committed carries each committed batch from the writer to apply,
	// in commit order, so the next commit runs while the last one is
	// delivered and acknowledged. It holds none: a writer one commit
	// ahead waits for apply, and what queues meanwhile makes its next
	// commit bigger rather than the commits more.
	committed chan committedBatch
	deliver   []deliverer
	// fan is apply's own fanout, for the messages it writes itself.
	fan *fanout
	h   *Hub
	// stopped is closed when the hub stops.
	stopped <-chan struct{}
	failing atomic.Pointer[error] // the last commit's error, nil after a success

	// pipe is held by whoever commits: the commit loop from a batch's
	// commit until apply has it, or a sender committing and applying its
	// own message when nothing else is in the pipeline (acceptThen).
	pipe sync.Mutex
	// queued counts operations handed to ops and not yet applied: while
	// it is 0 and pipe is free, nothing is committed ahead of a new send
	// or waits to be applied, so the sender may do both itself.
	queued atomic.Int64

	mu    sync.Mutex
	rooms map[int64]*memRoom
	// present is the users with a connection here (one node: the hub's own
	// view, kept for presence queries).
	present map[int64]bool
}

// memOp is one operation waiting for the next commit.
type memOp struct {
	draft *chatlog.Draft
	del   *chatlog.Deletion
	edit  *chatlog.Edit
	read  *chatlog.ReadMark
	acc   chatlog.Accepted
	err   error
	// Exactly one of done and then is set: run waits on done; a pipelined
	// send (acceptThen) is answered by then, in commit order, on the
	// goroutine that applies commits or, when it committed the send
	// itself (commitHere), on the sender's.
	done chan struct{}
	then func(chatlog.Accepted, error)
}

// finish releases whoever waits for op.
func (op *memOp) finish() {
	if op.then != nil {
		op.then(op.acc, op.err)
		return
	}
	close(op.done)
}

// committedBatch is one commit's operations and what the log made of
// them (err: nothing of it was kept).
type committedBatch struct {
	ops []*memOp
	lb  *chatlog.Batch
	err error
}

type delivery struct {
	room    int64
	payload []byte
}

// deliverer is one goroutine writing room events to sockets; a room
// always goes to the same one, in order.
type deliverer struct {
	ch chan delivery
	// queued counts events handed to ch and not yet written: apply writes
	// a room's message itself only while it is 0, so nothing of the room
	// handed over before is still being written.
	queued atomic.Int64
}

// inlineBatch is the largest committed batch whose messages apply writes
// to the sockets itself rather than handing them to the deliverers, when
// nothing waits for the next commit: at a message or two per commit
// (1,000 messages a second) the hand-off was a goroutine wake-up per
// message, and writing them on the spot cut the delivery p99 by up to a
// fifth (docs/BENCHMARKS.md). A bigger batch, or sends queued behind it,
// mean a busy node, whose writes the deliverers spread over the
// processors while apply hands the writer its next batch sooner.
const inlineBatch = 4

// memRoom is one room's live state.
type memRoom struct {
	mu sync.Mutex
	// top is the highest committed seq, once known (loaded from the log
	// on first use, then raised by every commit).
	top      int64
	topKnown bool
	// ring holds the newest messages, seqs first, first+1, …, as clients
	// see them (deleted ones as tombstones).
	ring  [][]byte
	first int64
	// reads are the members' read positions, once loaded.
	reads map[int64]int64
}

// NewMemoryBroker returns the single-node engine on log.
func NewMemoryBroker(log Log, members Members, cfg MemoryConfig) *MemoryBroker {
	if cfg.RecentLen <= 0 {
		cfg.RecentLen = 1000
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.Deliverers <= 0 {
		cfg.Deliverers = 4 * runtime.GOMAXPROCS(0)
	}
	return &MemoryBroker{log: log, members: members, cfg: cfg, ops: make(chan *memOp, 4*cfg.MaxBatch),
		committed: make(chan committedBatch), rooms: map[int64]*memRoom{}, present: map[int64]bool{}}
}

func (b *MemoryBroker) start(ctx context.Context, h *Hub) error {
	b.h = h
	b.stopped = ctx.Done()
	b.fan = &fanout{h: h}
	b.deliver = make([]deliverer, b.cfg.Deliverers)
	for i := range b.deliver {
		dl := &b.deliver[i]
		dl.ch = make(chan delivery, 8192)
		h.done.Add(1)
		go func() {
			defer h.done.Done()
			f := &fanout{h: h}
			defer f.closeRing()
			for {
				select {
				case <-ctx.Done():
					return
				case d := <-dl.ch:
					f.deliver(d.room, d.payload)
					dl.queued.Add(-1)
				}
			}
		}()
	}
	h.done.Add(3)
	go func() {
		defer h.done.Done()
		b.commitLoop(ctx)
	}()
	go func() {
		defer h.done.Done()
		b.tidyLoop(ctx)
	}()
	go func() {
		defer h.done.Done()
		for cb := range b.committed {
			b.apply(cb)
			b.queued.Add(-int64(len(cb.ops)))
		}
		// commitHere applies under pipe too: once this holds it, no
		// commit is left to deliver.
		b.pipe.Lock()
		b.fan.closeRing()
		b.pipe.Unlock()
	}()
	return nil
}

func (b *MemoryBroker) close() {}

// workers is 512: a WebSocket send does not hold its worker until its
// commit (acceptThen), but a read position, a deletion or an edit still
// does, so many workers let those join one commit instead of queueing.
func (b *MemoryBroker) workers() int { return 512 }

func (b *MemoryBroker) register(prometheus.Registerer) {}

func (b *MemoryBroker) healthy() error {
	if err := b.failing.Load(); err != nil {
		return fmt.Errorf("message log: last commit failed: %w", *err)
	}
	return nil
}

// commitLoop is the one writer: it takes every operation queued since the
// last commit (up to MaxBatch), commits them together and hands the
// batch to apply, which puts it in memory, delivers the events (see
// inlineBatch) and releases the callers, in that order, so an acknowledged
// message is readable by sync and delivered in seq order. While apply
// delivers one batch and writes its acks the writer commits the next.
func (b *MemoryBroker) commitLoop(ctx context.Context) {
	defer close(b.committed)
	for {
		batch, ok := nextBatch(ctx, b.ops, make([]*memOp, 0, 64), b.cfg.MaxBatch)
		if !ok {
			b.refuse()
			return
		}
		b.pipe.Lock()
		b.committed <- b.commit(batch)
		b.pipe.Unlock()
	}
}

// tidyEvery is how long after its last offer ended the log is offered
// its deferred work again; the log does it only once due (SQLite: a
// slice of rooms 1/128 s after its last move ended, so counting from the
// end lets each offer find its slice due). A 4 ms ticker offered it
// twice as often; halving the offers took a tenth off the node's CPU per
// delivery at 1000 × 1000 (docs/BENCHMARKS.md, "Sessions 26–27").
const tidyEvery = 8 * time.Millisecond

// tidyLoop lets the log do its deferred work beside the commit loop, so
// a send does not wait for it (SQLite: its moves run while new messages
// go into its journal).
func (b *MemoryBroker) tidyLoop(ctx context.Context) {
	t := time.NewTimer(tidyEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.tidy()
		t.Reset(tidyEvery)
	}
}

// tidy lets the log do its deferred work; a failure only shows in
// healthy, as a commit's would, and the work is retried by the next
// tidy or commit.
func (b *MemoryBroker) tidy() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.log.Tidy(ctx); err != nil {
		err = fmt.Errorf("hub: tidy the message log: %w", err)
		b.failing.Store(&err)
	}
}

// refuse fails what is still queued when the node stops.
func (b *MemoryBroker) refuse() {
	for {
		select {
		case op := <-b.ops:
			b.queued.Add(-1)
			op.err = errShuttingDown
			op.finish()
		default:
			return
		}
	}
}

var errShuttingDown = errors.New("hub: node shutting down")

// commit writes ops to the log in one transaction.
func (b *MemoryBroker) commit(ops []*memOp) committedBatch {
	var lb chatlog.Batch
	for _, op := range ops {
		switch {
		case op.draft != nil:
			lb.Drafts = append(lb.Drafts, op.draft)
		case op.del != nil:
			lb.Deletes = append(lb.Deletes, *op.del)
		case op.edit != nil:
			lb.Edits = append(lb.Edits, *op.edit)
		case op.read != nil:
			lb.Reads = append(lb.Reads, *op.read)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := b.log.Commit(ctx, &lb)
	cancel()
	if err != nil {
		b.failing.Store(&err)
	} else {
		b.failing.Store(nil)
	}
	return committedBatch{ops: ops, lb: &lb, err: err}
}

// apply puts a committed batch in memory, delivers its events (writing a
// small batch's messages itself, see inlineBatch, and handing the rest
// to the deliverers) and then releases its callers; a failed one only
// fails them.
func (b *MemoryBroker) apply(cb committedBatch) {
	ops, lb := cb.ops, cb.lb
	if cb.err != nil {
		for _, op := range ops {
			op.err = cb.err
			op.finish()
		}
		return
	}
	var d, x, e int
	inline := len(ops) <= inlineBatch && len(b.ops) == 0
	for _, op := range ops {
		switch {
		case op.draft != nil:
			op.acc = lb.Accepted[d]
			if !op.acc.Dup {
				msg, room := lb.Encoded[d], op.draft.Room
				b.room(room).append(op.acc.Seq, msg, b.cfg.RecentLen)
				if inline && b.delivererOf(room).queued.Load() == 0 {
					b.fan.deliver(room, msg)
				} else {
					b.queue(room, msg)
				}
			}
			d++
		case op.del != nil:
			del := lb.Deletes[x]
			op.del.Done = del.Done
			if del.Done {
				b.room(del.Room).tombstone(del.Seq)
				b.queue(del.Room, encode(deletedEvent{Type: "deleted", Room: del.Room, Seq: del.Seq, By: del.By}))
			}
			x++
		case op.edit != nil:
			ed := lb.Edits[e]
			op.edit.Done = ed.Done
			if ed.Done {
				b.room(ed.Room).replace(ed.Seq, ed.Msg)
				b.queue(ed.Room, encode(editedEvent{Type: "edited", Room: ed.Room, Seq: ed.Seq, Body: ed.Body, EditedAt: ed.At}))
			}
			e++
		}
	}
	for _, op := range ops {
		op.finish()
	}
}

// run queues one operation for the next commit and waits for it.
func (b *MemoryBroker) run(ctx context.Context, op *memOp) error {
	op.done = make(chan struct{})
	b.queued.Add(1)
	select {
	case b.ops <- op:
	case <-ctx.Done():
		b.queued.Add(-1)
		return ctx.Err()
	}
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		// The commit may still happen; a retry with the same cid is
		// answered with the original seq.
		return ctx.Err()
	}
}

// queue hands a room event to the room's deliverer (dropped once the hub
// stopped, when no deliverer takes it).
func (b *MemoryBroker) queue(room int64, payload []byte) {
	dl := b.delivererOf(room)
	dl.queued.Add(1)
	select {
	case dl.ch <- delivery{room, payload}:
	case <-b.stopped:
	}
}

// delivererOf is the deliverer of room's events.
func (b *MemoryBroker) delivererOf(room int64) *deliverer {
	return &b.deliver[uint64(room)%uint64(len(b.deliver))]
}

func (b *MemoryBroker) room(id int64) *memRoom {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rooms[id]
	if r == nil {
		r = &memRoom{}
		b.rooms[id] = r
	}
	return r
}

// append adds a committed message to the ring, keeping at most keep.
func (r *memRoom) append(seq int64, msg []byte, keep int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ring) == 0 || seq != r.first+int64(len(r.ring)) {
		r.ring, r.first = r.ring[:0], seq
	}
	r.ring = append(r.ring, msg)
	if len(r.ring) >= 2*keep {
		// Dropping the oldest half at once keeps appends amortized O(1).
		n := copy(r.ring, r.ring[len(r.ring)-keep:])
		clear(r.ring[n:])
		r.ring = r.ring[:n]
		r.first = seq - int64(n) + 1
	}
	r.top, r.topKnown = max(r.top, seq), true
}

// replace puts an edited message in the ring, if it is still there.
func (r *memRoom) replace(seq int64, msg []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := seq - r.first; i >= 0 && i < int64(len(r.ring)) {
		r.ring[i] = msg
	}
}

func (r *memRoom) tombstone(seq int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := seq - r.first; i >= 0 && i < int64(len(r.ring)) {
		r.ring[i] = chatlog.Tombstone(r.ring[i])
	}
}

// topSeq is the room's highest committed seq, read from the log once.
func (b *MemoryBroker) topSeq(ctx context.Context, r *memRoom, room int64) (int64, error) {
	r.mu.Lock()
	top, known := r.top, r.topKnown
	r.mu.Unlock()
	if known {
		return top, nil
	}
	stored, err := b.log.MaxSeq(ctx, room)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.top, r.topKnown = max(r.top, stored), true
	return r.top, nil
}

func (b *MemoryBroker) accept(ctx context.Context, d *chatlog.Draft) (chatlog.Accepted, error) {
	if d.From != 0 && !b.members.Has(d.Room, d.From) {
		return chatlog.Accepted{}, errNotMember
	}
	op := &memOp{draft: d}
	if err := b.run(ctx, op); err != nil {
		return chatlog.Accepted{}, fmt.Errorf("hub: commit message to room %d: %w", d.Room, err)
	}
	return op.acc, nil
}

// acceptThen is accept without waiting: the draft joins the next commit
// and then hears the outcome once it is committed (or failed), after the
// message is readable and queued for delivery, on the goroutine that
// applies commits. Sends of one caller are answered in the order they
// were made. It waits only while the commit queue is full — or, when
// nothing is queued or being committed, for its own commit: then the
// caller commits and applies the message itself, sparing the two
// goroutine wake-ups of the pipeline (at 1,000 messages a second most
// sends find it empty).
func (b *MemoryBroker) acceptThen(d *chatlog.Draft, then func(chatlog.Accepted, error)) {
	if d.From != 0 && !b.members.Has(d.Room, d.From) {
		then(chatlog.Accepted{}, errNotMember)
		return
	}
	op := &memOp{draft: d}
	op.then = func(acc chatlog.Accepted, err error) {
		if err != nil {
			err = fmt.Errorf("hub: commit message to room %d: %w", d.Room, err)
		}
		then(acc, err)
	}
	if b.commitHere(op) {
		return
	}
	b.queued.Add(1)
	select {
	case b.ops <- op:
	case <-b.stopped:
		b.queued.Add(-1)
		then(chatlog.Accepted{}, errShuttingDown)
	}
}

// commitHere commits and applies op on the caller's goroutine if the
// pipeline is empty, and says whether it did. Holding pipe with queued
// at 0 means every operation queued before op is applied (so a caller's
// earlier sends keep their order) and none can be committed until op is.
func (b *MemoryBroker) commitHere(op *memOp) bool {
	if b.queued.Load() != 0 || !b.pipe.TryLock() {
		return false
	}
	defer b.pipe.Unlock()
	if b.queued.Load() != 0 {
		return false
	}
	select {
	case <-b.stopped:
		return false
	default:
	}
	b.apply(b.commit([]*memOp{op}))
	return true
}

func (b *MemoryBroker) recent(ctx context.Context, room, after int64, limit int) ([][]byte, bool, error) {
	r := b.room(room)
	top, err := b.topSeq(ctx, r, room)
	if err != nil {
		return nil, false, err
	}
	if top <= after {
		return nil, true, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ring) == 0 {
		return nil, false, nil
	}
	from := max(after+1-r.first, 0)
	if from >= int64(len(r.ring)) {
		return nil, r.first <= after+1, nil
	}
	end := min(from+int64(limit), int64(len(r.ring)))
	return append([][]byte(nil), r.ring[from:end]...), r.first <= after+1, nil
}

func (b *MemoryBroker) recentBefore(_ context.Context, room, before int64, limit int) ([][]byte, error) {
	r := b.room(room)
	r.mu.Lock()
	defer r.mu.Unlock()
	end := int64(len(r.ring)) // exclusive index
	if before > 0 {
		end = min(end, before-r.first)
	}
	var out [][]byte
	for i := end - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, r.ring[i])
	}
	return out, nil
}

func (b *MemoryBroker) message(_ context.Context, room, seq int64) ([]byte, error) {
	r := b.room(room)
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := seq - r.first; len(r.ring) > 0 && i >= 0 && i < int64(len(r.ring)) {
		return r.ring[i], nil
	}
	return nil, nil
}

func (b *MemoryBroker) delete(ctx context.Context, room, seq, by int64) (bool, error) {
	op := &memOp{del: &chatlog.Deletion{Room: room, Seq: seq, By: by}}
	if err := b.run(ctx, op); err != nil {
		return false, fmt.Errorf("hub: delete message %d of room %d: %w", seq, room, err)
	}
	return op.del.Done, nil
}

func (b *MemoryBroker) edit(ctx context.Context, e *chatlog.Edit) (bool, error) {
	op := &memOp{edit: e}
	if err := b.run(ctx, op); err != nil {
		return false, fmt.Errorf("hub: edit message %d of room %d: %w", e.Seq, e.Room, err)
	}
	return e.Done, nil
}

// reads returns the room's read positions, loading them once; callers
// hold r.mu.
func (b *MemoryBroker) reads(ctx context.Context, r *memRoom, room int64) (map[int64]int64, error) {
	if r.reads != nil {
		return r.reads, nil
	}
	stored, err := b.log.ReadPositions(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("hub: read positions of room %d: %w", room, err)
	}
	r.reads = stored
	return r.reads, nil
}

func (b *MemoryBroker) markRead(ctx context.Context, room, user, seq int64) (int64, error) {
	r := b.room(room)
	top, err := b.topSeq(ctx, r, room)
	if err != nil {
		return 0, err
	}
	seq = min(seq, top)
	r.mu.Lock()
	reads, err := b.reads(ctx, r, room)
	if err != nil || reads[user] >= seq {
		r.mu.Unlock()
		return 0, err
	}
	reads[user] = seq
	r.mu.Unlock()
	if err := b.run(ctx, &memOp{read: &chatlog.ReadMark{Room: room, User: user, Seq: seq}}); err != nil {
		return 0, fmt.Errorf("hub: commit read position in room %d: %w", room, err)
	}
	return seq, nil
}

func (b *MemoryBroker) readPositions(ctx context.Context, room int64) (map[int64]int64, error) {
	r := b.room(room)
	r.mu.Lock()
	defer r.mu.Unlock()
	reads, err := b.reads(ctx, r, room)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]int64, len(reads))
	for u, s := range reads {
		out[u] = s
	}
	return out, nil
}

func (b *MemoryBroker) activity(ctx context.Context, roomIDs []int64, user int64) (map[int64]chatlog.Activity, error) {
	out := make(map[int64]chatlog.Activity, len(roomIDs))
	for _, id := range roomIDs {
		r := b.room(id)
		top, err := b.topSeq(ctx, r, id)
		if err != nil {
			return nil, err
		}
		a := chatlog.Activity{Seq: top}
		r.mu.Lock()
		reads, err := b.reads(ctx, r, id)
		if err == nil {
			a.Read = reads[user]
		}
		if n := len(r.ring); n > 0 {
			a.Last = r.ring[n-1]
		}
		r.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if a.Last == nil && top > 0 {
			last, err := b.log.Before(ctx, id, 0, 1)
			if err != nil {
				return nil, err
			}
			if len(last) == 1 {
				a.Last = last[0]
			}
		}
		out[id] = a
	}
	return out, nil
}

func (b *MemoryBroker) isMember(_ context.Context, room, user int64) (bool, error) {
	return b.members.Has(room, user), nil
}

func (b *MemoryBroker) publish(_ context.Context, room int64, payload []byte) error {
	b.queue(room, payload)
	return nil
}

func (b *MemoryBroker) publishAll(_ context.Context, rooms []int64, payload []byte) error {
	for _, r := range rooms {
		b.queue(r, payload)
	}
	return nil
}

func (b *MemoryBroker) publishMembership(_ context.Context, payload []byte) error {
	b.h.membershipEvent(payload)
	return nil
}

// One node delivers every room it has members of: nothing to subscribe.
func (b *MemoryBroker) subscribe(context.Context, ...int64) error   { return nil }
func (b *MemoryBroker) unsubscribe(context.Context, ...int64) error { return nil }

func (b *MemoryBroker) setOnline(_ context.Context, _ string, user int64, online bool) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.present[user]
	if online {
		b.present[user] = true
	} else {
		delete(b.present, user)
	}
	return was != online, nil
}

func (b *MemoryBroker) heartbeat(context.Context, string, []int64) error { return nil }

func (b *MemoryBroker) online(_ context.Context, users []int64) (map[int64]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[int64]bool, len(users))
	for _, u := range users {
		out[u] = b.present[u]
	}
	return out, nil
}
