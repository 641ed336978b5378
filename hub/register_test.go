package hub

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// bareHub is a hub's maps without a poller or sockets, for the order of
// membership changes and registration; its subscriptions go to b.
func bareHub(t *testing.T, b Broker) *Hub {
	log := slog.New(slog.DiscardHandler)
	h := &Hub{
		log: log, broker: b, metrics: newMetrics(prometheus.NewRegistry()),
		conns: map[*Conn]struct{}{}, users: map[int64]*local{}, rooms: map[int64]map[*Conn]struct{}{},
		pending: map[int64]*pendingUser{}, tokensChanged: map[int64]time.Time{},
		live: newLiveRooms(b, log),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.live.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// registered registers c and waits for its rooms' joins.
func registered(t *testing.T, h *Hub, c *Conn, roomIDs []int64) {
	t.Helper()
	_, joins := h.register(c, roomIDs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wait(ctx, joins); err != nil {
		t.Fatal(err)
	}
}

// TestKickDuringUpgradeSticks is issue 19's item 9: an upgrade reads the
// user's rooms, a kick commits and is announced, and only then does the
// connection register with what it read. It must not get the room back.
func TestKickDuringUpgradeSticks(t *testing.T) {
	h := bareHub(t, &MemoryBroker{})
	const user, room, other = 7, 42, 43
	done := h.expect(user)
	roomIDs := []int64{room, other} // read from SQL before the kick committed
	h.applyMembership(membershipEvent{Room: room, Users: []int64{user}, Joined: false})
	h.applyMembership(membershipEvent{Room: 99, Users: []int64{user}, Joined: true}) // and a join after it
	c := &Conn{user: user}
	registered(t, h, c, roomIDs)
	done()
	if h.isMember(user, room) {
		t.Fatal("the kicked room came back with the connection")
	}
	if _, in := h.rooms[room][c]; in {
		t.Fatal("the connection receives the kicked room")
	}
	if !h.isMember(user, other) || !h.isMember(user, 99) {
		t.Fatal("the other rooms were lost")
	}
	if len(h.pending) != 0 {
		t.Fatalf("%d pending users left after the upgrade", len(h.pending))
	}
}

// TestTokenChangeBeforeRegisterIsRechecked: a logout heard while a
// connection of its user is still upgrading (its token already checked,
// not yet registered, so the recheck it triggers cannot see it) makes the
// connection check its token again once registered; other users' do not.
func TestTokenChangeBeforeRegisterIsRechecked(t *testing.T) {
	h := bareHub(t, &MemoryBroker{})
	const user, other = 7, 8
	done := h.expect(user)
	h.membershipEvent(encode(membershipEvent{Users: []int64{user}, Recheck: true}))
	registered(t, h, &Conn{user: user}, nil)
	done()
	if !h.tokenChangedLately(user) {
		t.Fatal("a connection registering just after its user's logout would keep a revoked token")
	}
	if h.tokenChangedLately(other) {
		t.Fatal("another user's connection would be rechecked too")
	}
	h.tokensChanged[user] = time.Now().Add(-tokenChangeMemory - time.Second)
	h.tokenChanged([]int64{other})
	if _, kept := h.tokensChanged[user]; kept || h.tokenChangedLately(user) {
		t.Fatal("an old token change is remembered forever")
	}
}
