package main

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var _ = alsoOn(onMemory, TestMembersSeeTheRoomInSeqOrder)

// TestMembersSeeTheRoomInSeqOrder has five members send into one room at
// once while three others listen: each listener hears every message once,
// in seq order. On the single-node engine a commit of a few messages is
// written to the sockets right after it, a bigger one by the room's
// deliverer; bursts from several senders make both happen, one after the
// other, in the same room.
func TestMembersSeeTheRoomInSeqOrder(t *testing.T) {
	const senders, listeners, each = 5, 3, 150
	cfg := testConfig(t)
	cfg.SendRate, cfg.SendBurst = 1000, 1000
	n := startTestNode(t, cfg)
	owner := n.user(t, "Owner")
	var people []*client
	var ids []int64
	for i := range senders + listeners {
		c := n.user(t, fmt.Sprint("Member ", i))
		people = append(people, c)
		ids = append(ids, c.id)
	}
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": ids})
	conns := make([]*wsClient, len(people))
	for i, c := range people {
		conns[i] = n.connect(c)
	}
	// A sync answered means the connection has joined its rooms and
	// hears every later message live (docs/PROTOCOL.md, section 1).
	for _, w := range conns {
		w.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room.ID): 0}})
		w.await("synced")
	}
	var wg sync.WaitGroup
	for _, w := range conns[:senders] {
		wg.Go(func() {
			for i := range each {
				w.send(map[string]any{"type": "send", "room": room.ID, "cid": fmt.Sprint("c", i), "body": fmt.Sprint("hello ", i)})
				if i%10 == 9 {
					time.Sleep(5 * time.Millisecond) // bursts, then a pause
				}
			}
		})
	}
	for i, w := range conns[senders:] {
		wg.Go(func() {
			for want := int64(1); want <= senders*each; {
				m, err := w.read(20 * time.Second)
				if err != nil {
					t.Errorf("listener %d stopped hearing after seq %d of %d: %v", i, want-1, senders*each, err)
					return
				}
				if m.Type != "msg" {
					continue
				}
				if m.Seq != want {
					t.Errorf("listener %d got seq %d, want %d", i, m.Seq, want)
					return
				}
				want++
			}
		})
	}
	wg.Wait()
}
