package main

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// TestRedisRestartUnderTraffic stops the single Redis (append-only on) for
// 7 s while a member sends 50 messages a second over the WebSocket. A send
// waits up to 5 s for Redis and is then refused with "unavailable", never
// acked (the ones that outlive the outage are stored and acked); traffic
// resumes without restarting the node (its pub/sub reconnects, or the
// probe resubscribes); and the other member, after one sync, has every
// acked message exactly once and in order.
func TestRedisRestartUnderTraffic(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	stopRedis := startRedis(t, port, dir)
	cfg := testConfig(t)
	cfg.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	// Frames that queued during the outage are handled in a burst after
	// it; the send limit is not what this test is about.
	cfg.SendRate, cfg.SendBurst = 10_000, 10_000
	n := startTestNode(t, cfg)
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}}).ID
	wa, wb := n.connect(alice), n.connect(bob)
	col := newCollector()
	listen(wb, col)

	var (
		mu      sync.Mutex
		acked   = map[string]int64{}  // cid → seq
		refused = map[string]string{} // cid → error code
	)
	go func() {
		for {
			_ = wa.conn.SetReadDeadline(time.Now().Add(time.Minute))
			f, err := wa.readFrame()
			if err != nil {
				return
			}
			mu.Lock()
			switch f.Type {
			case "ack":
				acked[f.CID] = f.Seq
			case "error":
				refused[f.CID] = f.Code
			}
			mu.Unlock()
		}
	}()

	const total = 600 // 12 s at 50/s
	sentAt := make([]time.Time, total)
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		for i := range total {
			sentAt[i] = time.Now()
			wa.send(map[string]any{"type": "send", "room": room, "cid": fmt.Sprint("m", i), "body": fmt.Sprint("message ", i)})
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	stopRedis()
	down := time.Now()
	time.Sleep(7 * time.Second) // past the 5 s a send waits for Redis
	startRedis(t, port, dir)
	up := time.Now()
	<-sending

	// Every send gets an answer: its ack or a refusal.
	eventually(t, "an answer to every send", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)+len(refused) >= total
	})
	mu.Lock()
	var seqs []int64
	ackedAfterUp := 0
	for cid, seq := range acked {
		seqs = append(seqs, seq)
		var i int
		fmt.Sscanf(cid, "m%d", &i)
		if sentAt[i].After(up.Add(time.Second)) {
			ackedAfterUp++
		}
	}
	for cid, code := range refused {
		if code != "unavailable" {
			t.Fatalf("send %s refused with %q during a Redis restart, want unavailable", cid, code)
		}
		if _, both := acked[cid]; both {
			t.Fatalf("send %s was both acked and refused", cid)
		}
	}
	nRefused := len(refused)
	mu.Unlock()
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("acked seqs are not 1..%d without gaps: %v", len(seqs), seqs)
		}
	}
	if nRefused == 0 || ackedAfterUp == 0 {
		t.Fatalf("%d sends refused during the outage and %d acked after it: want both above zero", nRefused, ackedAfterUp)
	}

	// Bob catches up on what pub/sub dropped while it reconnected.
	wb.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room): col.last(room)}})
	eventually(t, "Bob to have every acked message", func() bool { return col.count(room) == len(seqs) })
	t.Logf("sent %d, acked %d (%d after Redis came back), refused %d as unavailable, Bob has 1..%d in order (%d duplicates absorbed); outage %v",
		total, len(seqs), ackedAfterUp, nRefused, col.count(room), col.dups, up.Sub(down).Round(time.Millisecond))
	waitStored(t, n, room, int64(len(seqs)))
}
