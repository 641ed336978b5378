package hub

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"moim/chatlog"
)

// Broker keeps a hub's live chat state and carries room events between
// nodes. RedisBroker serves any number of nodes through Redis;
// MemoryBroker serves one node from memory and its durable log, with no
// network hop.
type Broker interface {
	// start begins delivering room events of subscribed rooms to h's
	// connections and membership changes to h.
	start(ctx context.Context, h *Hub) error
	// close stops delivering; the hub has closed its connections.
	close()
	// healthy fails while deliveries are known to be stalled.
	healthy() error
	// workers is how many handler goroutines suit this broker when the
	// hub's Config leaves Workers unset; 0 takes the hub's default.
	workers() int
	// register adds the broker's own metrics to reg.
	register(reg prometheus.Registerer)

	// accept gives a draft its seq, durably, and publishes it; a retried
	// (user, cid) gets its original seq.
	accept(ctx context.Context, d *chatlog.Draft) (chatlog.Accepted, error)
	// recent returns up to limit messages of room after seq, oldest first,
	// deleted ones as tombstones; complete reports that nothing older than
	// what it holds is missing from the answer.
	recent(ctx context.Context, room, after int64, limit int) (msgs [][]byte, complete bool, err error)
	// recentBefore returns up to limit messages before seq (0: the
	// newest), newest first, from what it holds.
	recentBefore(ctx context.Context, room, before int64, limit int) ([][]byte, error)
	// message is one message as written (not tombstoned); nil when the
	// broker does not hold it.
	message(ctx context.Context, room, seq int64) ([]byte, error)
	// delete tombstones a message durably and tells the room; false when
	// it was deleted already.
	delete(ctx context.Context, room, seq, by int64) (bool, error)
	// edit replaces a message that is not deleted, durably, and tells the
	// room; false when it was deleted (or is unknown to the log).
	edit(ctx context.Context, e *chatlog.Edit) (bool, error)
	// markRead raises a member's read position durably, never lowering
	// it nor past the room's newest seq, and returns the new position (0
	// when it did not move).
	markRead(ctx context.Context, room, user, seq int64) (int64, error)
	// readPositions is every member's read position in room.
	readPositions(ctx context.Context, room int64) (map[int64]int64, error)
	// activity is, for each room, its newest seq, user's read position
	// and newest message.
	activity(ctx context.Context, rooms []int64, user int64) (map[int64]chatlog.Activity, error)
	// isMember answers from the broker's copy of membership.
	isMember(ctx context.Context, room, user int64) (bool, error)

	// publish sends an ephemeral event to a room's subscribers.
	publish(ctx context.Context, room int64, payload []byte) error
	// publishAll sends one ephemeral event to several rooms.
	publishAll(ctx context.Context, rooms []int64, payload []byte) error
	// publishMembership tells every node of a membership change.
	publishMembership(ctx context.Context, payload []byte) error
	// subscribe and unsubscribe start and stop delivering rooms here.
	subscribe(ctx context.Context, rooms ...int64) error
	unsubscribe(ctx context.Context, rooms ...int64) error

	// setOnline claims or drops user's presence on node and reports
	// whether the user's presence across all nodes flipped.
	setOnline(ctx context.Context, node string, user int64, online bool) (bool, error)
	// heartbeat renews node's claim for users.
	heartbeat(ctx context.Context, node string, users []int64) error
	// online reports which of users are online on any node.
	online(ctx context.Context, users []int64) (map[int64]bool, error)
}
