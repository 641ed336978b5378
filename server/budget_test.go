package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"moim/limit"
)

// budgetConfig turns the per-socket bucket out of the way, so what is
// left to stop a user is their one budget.
func budgetConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.SendRate, cfg.SendBurst = 1e6, 1e6
	return cfg
}

// sendAll sends n messages on w at once and counts acks and rate_limited
// errors (each of which must say how long to wait).
func sendAll(t *testing.T, w *wsClient, room int64, tag string, n int) (acks, limited int) {
	t.Helper()
	for i := range n {
		w.send(map[string]any{"type": "send", "room": room, "cid": fmt.Sprint(tag, "-", i), "body": "hi"})
	}
	for acks+limited < n {
		switch f := w.next(); {
		case f.Type == "ack":
			acks++
		case f.Type == "error" && f.Code == "rate_limited":
			if f.RetryAfterMS <= 0 || f.RetryAfterMS > 60_000 || f.CID == "" {
				t.Errorf("rate_limited %+v: want the cid and a wait within the window", f)
			}
			limited++
		case f.Type == "error":
			t.Fatalf("send failed: %s %s", f.Code, f.Message)
		}
	}
	return acks, limited
}

var _ = alsoOn(onMemory, TestOneSendBudgetPerUser)

// TestOneSendBudgetPerUser is issue 19's item 3: five sockets of one
// user (on two nodes, on the Redis path) and REST together get exactly
// the user's budget, not five times it, and REST past it is a 429 with
// Retry-After.
func TestOneSendBudgetPerUser(t *testing.T) {
	cfg := budgetConfig(t)
	cfg.SendLimit = limit.Rule{N: 30, Window: time.Minute}
	n := startTestNode(t, cfg)
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})

	path := urlf("/api/rooms/%d/messages", room.ID)
	for i := range 10 {
		alice.must(201, "POST", path, map[string]any{"cid": fmt.Sprint("rest-", i), "body": "hi"}, nil)
	}
	nodes := []*testNode{n}
	if os.Getenv(envEngine) != "memory" {
		second := n.cfg
		second.DataDir, second.NodeID = t.TempDir(), "second"
		nodes = append(nodes, startTestNode(t, second))
	}
	var socks []*wsClient
	for i := range 5 {
		socks = append(socks, nodes[i%len(nodes)].connect(alice))
	}
	var mu sync.Mutex
	acks, limited := 0, 0
	var wg sync.WaitGroup
	for i, w := range socks {
		wg.Go(func() {
			a, l := sendAll(t, w, room.ID, fmt.Sprint("ws", i), 20)
			mu.Lock()
			acks, limited = acks+a, limited+l
			mu.Unlock()
		})
	}
	wg.Wait()
	if acks != 20 || limited != 80 {
		t.Fatalf("five sockets after 10 REST sends, 100 sends: %d acked, %d rate_limited; want the 20 the budget has left", acks, limited)
	}
	if secs := alice.kit().RetryAfter("POST", path, `{"cid":"rest-late","body":"hi"}`); secs > 60 {
		t.Fatalf("REST send past the budget: Retry-After %d, want within the window", secs)
	}
	// Another user's budget is their own.
	bob := n.user(t, "Bob")
	bobRoom := bob.createRoom(map[string]any{"name": "Bob's"})
	bob.must(201, "POST", urlf("/api/rooms/%d/messages", bobRoom.ID), map[string]any{"cid": "b1", "body": "hi"}, nil)
}

var _ = alsoOn(onMemory, TestSyncIsChargedByMessages)

// TestSyncIsChargedByMessages: sync frames over a room with many messages
// are charged for what they return, so a client cannot pull a room's
// history again and again; once the budget is spent the rooms get
// rate_limited with a wait and no messages.
func TestSyncIsChargedByMessages(t *testing.T) {
	cfg := budgetConfig(t)
	cfg.SyncLimit = limit.Rule{N: 1000, Window: time.Minute}
	n := startTestNode(t, cfg)
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Busy"})
	w := n.connect(alice)
	if a, _ := sendAll(t, w, room.ID, "fill", 400); a != 400 {
		t.Fatalf("%d of 400 filling sends acked", a)
	}
	key := strconv.FormatInt(room.ID, 10)
	got := 0
	for i := range 5 {
		w.send(map[string]any{"type": "sync", "rooms": map[string]int64{key: 0}})
		f := w.awaitWhere(func(f frameMsg) bool { return f.Type == "synced" || f.Type == "error" })
		if f.Type == "synced" {
			got++
			continue
		}
		if f.Code != "rate_limited" || f.Room != room.ID || f.RetryAfterMS <= 0 {
			t.Fatalf("sync %d: %+v, want rate_limited for the room with a wait", i, f)
		}
	}
	// 400 messages a sync: the third is served while the budget has room
	// left (803 of 1000) and charged past it (1203); the fourth and fifth
	// are refused.
	if got != 3 {
		t.Fatalf("%d of 5 syncs of 400 messages served with a budget of 1000, want 3", got)
	}
}

var _ = alsoOn(onMemory, TestHistoryAndSearchShareTheSyncBudget)

// TestHistoryAndSearchShareTheSyncBudget: REST history and search are
// charged to the sync budget like sync frames (one per request plus every
// message returned), so the REST API is no way around it, and once it is
// spent a sync frame waits too.
func TestHistoryAndSearchShareTheSyncBudget(t *testing.T) {
	cfg := budgetConfig(t)
	cfg.SyncLimit = limit.Rule{N: 250, Window: time.Minute}
	n := startTestNode(t, cfg)
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Busy"})
	w := n.connect(alice)
	if a, _ := sendAll(t, w, room.ID, "fill", 150); a != 150 {
		t.Fatalf("%d of 150 filling sends acked", a)
	}
	// Search reads the message store, which on the Redis path may not
	// hold every message yet: whatever it finds is what is charged.
	var found struct{ Messages []json.RawMessage }
	alice.must(200, "GET", urlf("/api/rooms/%d/messages/search?q=hi&limit=50", room.ID), nil, &found)
	spent := 1 + len(found.Messages)
	history := urlf("/api/rooms/%d/messages?limit=100", room.ID)
	served := 0
	for spent+1 <= 250 { // a request is served while its 1 fits
		var page struct{ Messages []json.RawMessage }
		alice.must(200, "GET", history, nil, &page)
		if len(page.Messages) != 100 {
			t.Fatalf("history page of %d messages, want 100", len(page.Messages))
		}
		spent += 1 + 100 // and charged whole, past the rule
		served++
	}
	if served < 2 {
		t.Fatalf("%d history pages of 100 served with a budget of 250", served)
	}
	alice.fails(429, "rate_limited", "GET", history, nil)
	if secs := alice.kit().RetryAfter("GET", urlf("/api/rooms/%d/messages/search?q=hi", room.ID), nil); secs > 60 {
		t.Fatalf("search past the budget: Retry-After %d, want within the window", secs)
	}
	w.send(map[string]any{"type": "sync", "rooms": map[string]int64{strconv.FormatInt(room.ID, 10): 0}})
	f := w.awaitWhere(func(f frameMsg) bool { return f.Type == "synced" || f.Type == "error" })
	if f.Code != "rate_limited" || f.RetryAfterMS <= 0 {
		t.Fatalf("sync after REST spent the budget: %+v, want rate_limited with a wait", f)
	}
	// Another user's reads are their own.
	bob := n.user(t, "Bob")
	bobRoom := bob.createRoom(map[string]any{"name": "Bob's"})
	bob.must(200, "GET", urlf("/api/rooms/%d/messages", bobRoom.ID), nil, nil)
}

var _ = alsoOn(onMemory, TestReadAndTypingFloodsAreLimited)

// TestReadAndTypingFloodsAreLimited: read and typing frames share one
// budget per user, and the room's other members see only what it allows.
func TestReadAndTypingFloodsAreLimited(t *testing.T) {
	cfg := budgetConfig(t)
	cfg.EventLimit = limit.Rule{N: 10, Window: time.Minute}
	n := startTestNode(t, cfg)
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	wa, wa2, wb := n.connect(alice), n.connect(alice), n.connect(bob)
	ack := wa.say(room.ID, "m1", "hello")
	for range 20 {
		wa.send(map[string]any{"type": "read", "room": room.ID, "seq": ack.Seq})
		wa2.send(map[string]any{"type": "typing", "room": room.ID})
	}
	limited := 0
	for _, w := range []*wsClient{wa, wa2} {
		for {
			f, err := w.read(time.Second)
			if err != nil {
				break
			}
			if f.Type == "error" && f.Code == "rate_limited" && f.RetryAfterMS > 0 {
				limited++
			}
		}
	}
	events := 0
	for {
		f, err := wb.read(time.Second)
		if err != nil {
			break
		}
		if (f.Type == "read" || f.Type == "typing") && f.User == alice.id {
			events++
		}
	}
	if limited != 30 || events > 10 {
		t.Fatalf("40 read and typing frames with a budget of 10: %d refused, Bob saw %d events; want 30 refused and at most 10 events", limited, events)
	}
}
