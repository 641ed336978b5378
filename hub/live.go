package hub

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// joinTimeout bounds how long a connection waits for its rooms'
// subscriptions before it is closed with 1011.
const joinTimeout = 10 * time.Second

var errLeft = errors.New("hub: every connection left the room before it was subscribed")

// liveRooms keeps the broker subscribed to the rooms this node has
// connections in, without holding h.mu across the network: the hub
// records under h.mu which rooms it wants (need, drop) and one goroutine
// (run) tells the broker, all rooms changed since its last round in one
// subscribe and one unsubscribe call, which on Redis is one command per
// pub/sub shard. Being the broker's only caller for rooms, it sends each
// room's commands in the order of the changes that caused them, and it
// converges on the last: a room joined and left within one round costs
// nothing. A connection waits for its rooms' joins before its frames are
// read, so a sync it sends after "ready" sees everything not delivered
// live.
type liveRooms struct {
	broker Broker
	log    *slog.Logger
	wake   chan struct{}

	mu    sync.Mutex
	rooms map[int64]*roomState
	dirty map[int64]struct{}
}

// roomState is one room's subscription.
type roomState struct {
	// want: the room has local connections.
	want bool
	// subscribed: the broker was last told to subscribe it.
	subscribed bool
	// confirmed: the broker confirmed that subscription, so everything
	// published to the room from then on is delivered here.
	confirmed bool
	// join is closed when the next subscription is confirmed or fails.
	join *join
}

// join is one subscription of a room, awaited by the connections that
// need it; err is set before done closes when it failed.
type join struct {
	done chan struct{}
	err  error
}

func newJoin() *join { return &join{done: make(chan struct{})} }

func newLiveRooms(b Broker, log *slog.Logger) *liveRooms {
	return &liveRooms{broker: b, log: log, wake: make(chan struct{}, 1),
		rooms: map[int64]*roomState{}, dirty: map[int64]struct{}{}}
}

// need marks room wanted and returns the join to wait for, nil when the
// room is delivered here already. Call it under h.mu, in the order of the
// map changes.
func (l *liveRooms) need(room int64) *join {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.rooms[room]
	if s == nil {
		s = &roomState{join: newJoin()}
		l.rooms[room] = s
	}
	s.want = true
	if s.confirmed {
		return nil
	}
	// Also after a failed subscription: a new member tries again.
	l.mark(room)
	return s.join
}

// drop marks room no longer wanted (its last local connection left);
// call it under h.mu.
func (l *liveRooms) drop(room int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.rooms[room]; s != nil {
		s.want = false
		l.mark(room)
	}
}

func (l *liveRooms) mark(room int64) {
	l.dirty[room] = struct{}{}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run tells the broker the changes, a round at a time, until ctx ends;
// while one round waits for its confirmation the next one gathers.
func (l *liveRooms) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
		l.round(ctx)
	}
}

// round sends what changed since the last one and settles the joins.
func (l *liveRooms) round(ctx context.Context) {
	l.mu.Lock()
	var sub, unsub []int64
	for r := range l.dirty {
		s := l.rooms[r]
		switch {
		case s.want && !s.confirmed:
			sub = append(sub, r)
			s.subscribed = true
		case !s.want && s.subscribed:
			unsub = append(unsub, r)
			s.subscribed, s.confirmed = false, false
			if isClosed(s.join) {
				s.join = newJoin()
			}
		case !s.want:
			l.forget(r, s)
		}
	}
	clear(l.dirty)
	l.mu.Unlock()
	if len(unsub) > 0 {
		if err := l.broker.unsubscribe(ctx, unsub...); err != nil {
			l.log.Warn("unsubscribe", "rooms", len(unsub), "err", err)
		}
		l.mu.Lock()
		for _, r := range unsub {
			if s := l.rooms[r]; !s.want && !s.subscribed {
				l.forget(r, s) // else needed again meanwhile: it is dirty
			}
		}
		l.mu.Unlock()
	}
	if len(sub) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, joinTimeout)
	err := l.broker.subscribe(sctx, sub...)
	cancel()
	if err != nil {
		l.log.Warn("subscribe", "rooms", len(sub), "err", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range sub {
		s := l.rooms[r]
		j := s.join
		if err != nil {
			// Whether Redis holds it is unknown: subscribed stays true, so
			// it is unsubscribed once unwanted.
			j.err = err
			s.join = newJoin()
		} else {
			s.confirmed = true
		}
		close(j.done)
	}
}

// forget drops an unwanted, unsubscribed room's state; whoever needed it
// left before it was subscribed. Call it under l.mu.
func (l *liveRooms) forget(room int64, s *roomState) {
	delete(l.rooms, room)
	if !isClosed(s.join) {
		s.join.err = errLeft
		close(s.join.done)
	}
}

func isClosed(j *join) bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// wait blocks until every join is settled and returns the first failure;
// ctx bounds it.
func wait(ctx context.Context, joins []*join) error {
	for _, j := range joins {
		select {
		case <-j.done:
			if j.err != nil {
				return j.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
