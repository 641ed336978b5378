package hub

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// recordingBroker is a broker whose subscriptions are a set, changed in
// the order the calls come, each subscribe taking a while (a Redis round
// trip) so joins and leaves pile up behind it.
type recordingBroker struct {
	MemoryBroker
	mu    sync.Mutex
	subs  map[int64]bool
	calls int
}

func (b *recordingBroker) subscribe(_ context.Context, rooms ...int64) error {
	time.Sleep(time.Millisecond)
	b.set(rooms, true)
	return nil
}

func (b *recordingBroker) unsubscribe(_ context.Context, rooms ...int64) error {
	b.set(rooms, false)
	return nil
}

func (b *recordingBroker) set(rooms []int64, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	for _, r := range rooms {
		b.subs[r] = on
	}
}

func (b *recordingBroker) subscribed(room int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs[room]
}

// TestRacingJoinsAndLeavesEndSubscribed: connections of many users join
// and leave the same few rooms at once, and membership changes add and
// remove rooms meanwhile. Every connection, once its joins are settled,
// is in rooms the broker delivers; when it all stops, the broker is
// subscribed to exactly the rooms with local connections, and the
// subscriptions were batched (fewer calls than joins).
func TestRacingJoinsAndLeavesEndSubscribed(t *testing.T) {
	b := &recordingBroker{subs: map[int64]bool{}}
	h := bareHub(t, b)
	const rooms, workers, rounds = 5, 16, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range rounds {
				c := &Conn{user: int64(w*rounds + i)}
				mine := []int64{int64(rng.IntN(rooms)), int64(rng.IntN(rooms))}
				registered(t, h, c, mine)
				for _, r := range mine {
					if !b.subscribed(r) {
						t.Errorf("a connection's join settled while room %d is not subscribed", r)
					}
				}
				if rng.IntN(4) == 0 {
					h.applyMembership(membershipEvent{Room: rooms + int64(rng.IntN(2)), Users: []int64{c.user}, Joined: rng.IntN(2) == 0})
				}
				if rng.IntN(3) > 0 {
					h.unregister(c)
				}
			}
		})
	}
	wg.Wait()
	// Settled: the broker delivers exactly the rooms with connections, and
	// the keeper holds no state of rooms nobody is in.
	waitFor(t, "the subscriptions to settle", func() bool {
		h.mu.RLock()
		defer h.mu.RUnlock()
		for r := range int64(rooms + 2) {
			if b.subscribed(r) != (len(h.rooms[r]) > 0) {
				return false
			}
		}
		h.live.mu.Lock()
		defer h.live.mu.Unlock()
		return len(h.live.rooms) == len(h.rooms)
	})
	if b.calls >= workers*rounds {
		t.Errorf("%d broker calls for %d connections: joins were not batched", b.calls, workers*rounds)
	}
}

// TestLeaveDuringSubscribeUnsubscribes: the room's only connection leaves
// while its subscription is on its way; the room must not stay
// subscribed, and a connection joining after that waits for a fresh
// subscription instead of trusting the one being dropped.
func TestLeaveDuringSubscribeUnsubscribes(t *testing.T) {
	b := &gatedBroker{recordingBroker: recordingBroker{subs: map[int64]bool{}}, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	h := bareHub(t, b)
	a := &Conn{user: 1}
	_, joins := h.register(a, []int64{42})
	if len(joins) != 1 {
		t.Fatalf("%d joins for a room nobody was in, want 1", len(joins))
	}
	<-b.entered
	h.unregister(a) // while the subscribe is on its way
	close(b.gate)
	waitFor(t, "the room to be unsubscribed", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.calls == 2 && !b.subs[42]
	})
	c := &Conn{user: 2}
	registered(t, h, c, []int64{42})
	if !b.subscribed(42) {
		t.Fatal("a connection joined a room the broker no longer delivers")
	}
}

// gatedBroker holds every subscribe until gate closes, saying on entered
// that one came.
type gatedBroker struct {
	recordingBroker
	entered, gate chan struct{}
}

func (b *gatedBroker) subscribe(ctx context.Context, rooms ...int64) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.gate
	return b.recordingBroker.subscribe(ctx, rooms...)
}
