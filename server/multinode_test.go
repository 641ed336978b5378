package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// startCluster starts count nodes sharing one Redis and one SQL database,
// as behind a load balancer.
func startCluster(t *testing.T, count int) []*testNode {
	t.Helper()
	base := testConfig(t)
	if base.RedisURL == "" || base.MySQLDSN == "" {
		t.Skip("several nodes need a shared Redis and SQL: set MOIM_TEST_REDIS_URL and MOIM_TEST_MYSQL_DSN")
	}
	nodes := make([]*testNode, count)
	for i := range nodes {
		cfg := base
		cfg.DataDir = t.TempDir()
		cfg.NodeID = fmt.Sprintf("node-%d", i)
		nodes[i] = startTestNode(t, cfg)
	}
	return nodes
}

// collector applies a client's messages the way docs/PROTOCOL.md's
// reference client does: per room, in seq order; a seq already applied is
// a duplicate (counted, dropped), one past a gap waits until sync fills it.
type collector struct {
	mu      sync.Mutex
	seqs    map[int64][]int64
	waiting map[int64]map[int64]bool
	dups    int
}

func newCollector() *collector {
	return &collector{seqs: map[int64][]int64{}, waiting: map[int64]map[int64]bool{}}
}

func (c *collector) add(room, seq int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := int64(len(c.seqs[room])) // applied seqs are exactly 1..last
	switch {
	case seq <= last || c.waiting[room][seq]:
		c.dups++
	case seq > last+1:
		if c.waiting[room] == nil {
			c.waiting[room] = map[int64]bool{}
		}
		c.waiting[room][seq] = true
	default:
		c.seqs[room] = append(c.seqs[room], seq)
		for next := seq + 1; c.waiting[room][next]; next++ {
			delete(c.waiting[room], next)
			c.seqs[room] = append(c.seqs[room], next)
		}
	}
}

func (c *collector) count(room int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seqs[room])
}

func (c *collector) last(room int64) int64 { return int64(c.count(room)) }

// listen reads w until it closes, recording messages; it returns the close
// code (0 if the connection just broke).
func listen(w *wsClient, col *collector) <-chan ws.StatusCode {
	done := make(chan ws.StatusCode, 1)
	go func() {
		for {
			_ = w.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			f, err := w.readFrame()
			if err != nil {
				var ce closedError
				errors.As(err, &ce)
				done <- ce.code
				return
			}
			if f.Type == "msg" {
				col.add(f.Room, f.Seq)
			}
		}
	}()
	return done
}

var _ = alsoOn(onCluster, TestThreeNodesDeliverExactlyOnceInOrder)

// TestThreeNodesDeliverExactlyOnceInOrder spreads each room's members over
// three nodes, sends from everyone at once, then shuts one node down
// mid-stream: its clients get 1001, reconnect elsewhere, sync, and every
// member ends with every message exactly once, in seq order.
func TestThreeNodesDeliverExactlyOnceInOrder(t *testing.T) {
	nodes := startCluster(t, 3)
	const users, perRoom, rounds = 9, 6, 15
	people := make([]*client, users)
	for i := range people {
		people[i] = nodes[0].user(t, fmt.Sprintf("U%d", i))
	}
	// Room r has members r, r+1, … r+5 (mod 9): every room spans all nodes.
	roomIDs := make([]int64, 3)
	members := map[int64][]int{}
	for r := range roomIDs {
		var ids []int64
		for k := 1; k < perRoom; k++ {
			ids = append(ids, people[(r*3+k)%users].id)
		}
		roomIDs[r] = people[r*3].createRoom(map[string]any{"name": fmt.Sprint("room ", r), "member_ids": ids}).ID
		for k := 0; k < perRoom; k++ {
			members[roomIDs[r]] = append(members[roomIDs[r]], (r*3+k)%users)
		}
	}
	conns := make([]*wsClient, users)
	cols := make([]*collector, users)
	closed := make([]<-chan ws.StatusCode, users)
	for i, p := range people {
		conns[i] = nodes[i%3].connect(p)
		cols[i] = newCollector()
		closed[i] = listen(conns[i], cols[i])
	}
	// Senders use their own connections (on node 0) so the listeners above
	// see only room traffic.
	senders := make([]*wsClient, users)
	for i, p := range people {
		senders[i] = nodes[0].connect(p)
		go drainQuietly(senders[i])
	}

	sent := map[int64]int{}
	var sentMu sync.Mutex
	send := func(round int) {
		var wg sync.WaitGroup
		for room, ms := range members {
			for _, i := range ms {
				wg.Add(1)
				go func() {
					defer wg.Done()
					senders[i].send(map[string]any{"type": "send", "room": room, "cid": fmt.Sprintf("r%d-u%d", round, i), "body": fmt.Sprint("hello ", round)})
					sentMu.Lock()
					sent[room]++
					sentMu.Unlock()
				}()
			}
		}
		wg.Wait()
	}
	for round := 0; round < rounds; round++ {
		send(round)
		if round == rounds/2 {
			nodes[2].stop() // SIGTERM: the hub says 1001 to its clients
			for i := 2; i < users; i += 3 {
				if code := <-closed[i]; code != ws.StatusGoingAway {
					t.Fatalf("client of the stopped node got close code %d, want 1001", code)
				}
				// Reconnect to a surviving node and catch up.
				conns[i] = nodes[0].connect(people[i])
				rooms := map[string]int64{}
				for room, ms := range members {
					for _, m := range ms {
						if m == i {
							rooms[fmt.Sprint(room)] = cols[i].last(room)
						}
					}
				}
				closed[i] = listen(conns[i], cols[i])
				conns[i].send(map[string]any{"type": "sync", "rooms": rooms})
			}
		}
	}

	deadline := time.Now().Add(20 * time.Second)
	for room, ms := range members {
		for _, i := range ms {
			for cols[i].count(room) < sent[room] && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := cols[i].count(room); got != sent[room] {
				t.Fatalf("user %d has messages 1..%d of room %d in order, want 1..%d", i, got, room, sent[room])
			}
		}
	}
	// Clients that never reconnected saw no duplicate at all; the others
	// may see the overlap of sync and live delivery, which seqs absorb.
	for i := range people {
		if i%3 != 2 && cols[i].dups != 0 {
			t.Fatalf("user %d on a node that stayed up got %d duplicate messages", i, cols[i].dups)
		}
	}
}

// drainQuietly reads and discards frames until the connection closes.
func drainQuietly(w *wsClient) {
	for {
		_ = w.conn.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := w.readFrame(); err != nil {
			return
		}
	}
}

// TestNodesStartTogetherOnAFreshDatabase: replicas started at the same
// moment (a swarm deploy, a compose up) share one empty MySQL database;
// every one of them must come up, whichever creates the tables.
func TestNodesStartTogetherOnAFreshDatabase(t *testing.T) {
	base := testConfig(t)
	if base.MySQLDSN == "" {
		t.Skip("needs a shared MySQL database: set MOIM_TEST_MYSQL_DSN")
	}
	// A node waits for the migration lock up to StartupTimeout; the
	// harness's 5 s is for unreachable backends, and six nodes migrating
	// one after another under -race on a busy host took longer.
	base.StartupTimeout = time.Minute
	if base.MongoURI == "" {
		// One store for all, as in production: without MOIM_MONGO_URI
		// each node would keep the messages it stores in its own SQLite,
		// and no node's history would hold them all.
		newStandaloneStore(t, &base)
	}
	const count = 6
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	errs := make(chan error, count)
	for i := range count {
		cfg := base
		cfg.DataDir = t.TempDir()
		cfg.NodeID = fmt.Sprintf("node-%d", i)
		go func() {
			n, err := startNode(context.Background(), cfg, log)
			if err == nil {
				n.close()
			}
			errs <- err
		}()
	}
	for range count {
		if err := <-errs; err != nil {
			t.Errorf("a node starting beside %d others: %v", count-1, err)
		}
	}
}
