package push

import (
	"context"
	"fmt"
	"time"
)

// The send path hands every accepted message to the notifier, but most
// rooms have nobody with a push subscription: waking the gatherer for
// them, and asking SQL about them every window, is work for nothing. The
// notifier keeps, in memory, the set of rooms that have at least one
// member holding a subscription, so a message in any other room costs a
// map lookup and nothing else.
//
// The set is reloaded from SQL (one query for the whole node) every
// Config.Refresh and at once after a subscription changes on this node.
// Another node's changes (a subscription made there, a subscribed user
// joining a room) reach this node within Config.Refresh; a message in a
// room that became interesting during that time is not pushed.

// interested reports whether room has a member with a subscription.
// Lock-free and allocation-free: the set is replaced whole, never changed.
func (n *Notifier) interested(room int64) bool {
	return (*n.rooms.Load())[room]
}

// refresh reloads the set of rooms with a subscribed member. Reloads are
// serialized, so an older answer never replaces a newer one.
func (n *Notifier) refresh(ctx context.Context) error {
	n.refreshMu.Lock()
	defer n.refreshMu.Unlock()
	var ids []int64
	err := n.db.WithContext(ctx).Table("members").Distinct("room_id").
		Where("user_id IN (SELECT user_id FROM push_subscriptions)").
		Pluck("room_id", &ids).Error
	if err != nil {
		return fmt.Errorf("push: rooms with subscribed members: %w", err)
	}
	rooms := make(map[int64]bool, len(ids))
	for _, id := range ids {
		rooms[id] = true
	}
	n.rooms.Store(&rooms)
	return nil
}

// changed reloads the set after this node changed a subscription, so the
// subscriber's next message is already seen; a failure leaves the reload
// to the next tick.
func (n *Notifier) changed(ctx context.Context) {
	if err := n.refresh(ctx); err != nil {
		n.log.Warn("push: reload after a subscription change", "err", err)
	}
}

// watch reloads the set every Config.Refresh until ctx ends.
func (n *Notifier) watch(ctx context.Context) {
	tick := time.NewTicker(n.cfg.Refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			rctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
			if err := n.refresh(rctx); err != nil && ctx.Err() == nil {
				n.log.Warn("push: reload the rooms to watch", "err", err)
			}
			cancel()
		}
	}
}
