package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"moim/internal/testkit"
)

// TestKillNineKeepsEveryAck kills a zero-setup node (the single-node
// engine, nothing configured) with SIGKILL, during a burst of sends and
// right after one, or stops it with SIGTERM during one, again and again,
// and restarts it on the same data directory. The burst sends over REST
// and over WebSockets that keep many sends in flight each (the node acks
// those when their group commit is done, without holding the socket's
// worker). Every acknowledged message must be in the history once, under
// its acknowledged seq; a retried cid must keep its seq; new messages must
// get higher seqs; deletions and read positions must survive.
func TestKillNineKeepsEveryAck(t *testing.T) {
	bin := testkit.BuildServer(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	env := zeroSetupEnv(dir, addr)
	node := startProcess(t, bin, env, dir)
	base := "http://" + addr
	waitHealthy(t, base)
	n := &testNode{url: base}
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	var room struct{ ID int64 }
	alice.knows(bob.id)
	alice.must(201, "POST", "/api/rooms", map[string]any{"name": "Durable", "member_ids": []int64{bob.id}}, &room)

	acked := map[int64]string{} // seq → cid
	var deleted []int64
	var read int64
	const rounds = 6
	for round := range rounds {
		mode := []string{"kill -9 during the burst", "kill -9 after the last ack", "SIGTERM during the burst"}[round%3]
		if len(acked) > 0 {
			// A deletion and a read position, each confirmed by its event
			// (sent after the commit), just before the burst.
			w := n.connect(alice)
			target := minKey(acked, deleted)
			w.send(map[string]any{"type": "delete", "room": room.ID, "seq": target})
			w.awaitWhere(func(f frameMsg) bool { return f.Type == "deleted" && f.Seq == target })
			deleted = append(deleted, target)
			read = maxKey(acked)
			w.send(map[string]any{"type": "read", "room": room.ID, "seq": read})
			w.awaitWhere(func(f frameMsg) bool { return f.Type == "read" && f.User == alice.id && f.Seq == read })
		}
		during := mode != "kill -9 after the last ack"
		sockets := []*wsClient{n.connect(alice), n.connect(alice)}
		stop := node.kill
		if mode == "SIGTERM during the burst" {
			stop = node.Stop
		}
		got := burst(t, base, alice.token, room.ID, round, sockets, stop, during)
		for seq, cid := range got {
			if prev, ok := acked[seq]; ok {
				t.Fatalf("round %d: seq %d acknowledged twice, for %s and %s", round, seq, prev, cid)
			}
			acked[seq] = cid
		}
		if !during {
			node.kill()
		}
		node = startProcess(t, bin, env, dir)
		waitHealthy(t, base)
		checkHistory(t, alice, room.ID, acked, deleted)
		var pres struct {
			Members []struct {
				UserID int64 `json:"user_id"`
				Read   int64 `json:"read"`
			} `json:"members"`
		}
		alice.must(200, "GET", urlf("/api/rooms/%d/presence", room.ID), nil, &pres)
		for _, m := range pres.Members {
			if m.UserID == alice.id && m.Read != read {
				t.Fatalf("round %d: read position %d after the restart, want %d", round, m.Read, read)
			}
		}
		top := maxKey(acked)
		if top > 0 {
			var ack struct{ Seq int64 }
			alice.must(200, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": acked[top], "body": "again"}, &ack)
			if ack.Seq != top {
				t.Fatalf("round %d: retried cid %s got seq %d, acknowledged as %d", round, acked[top], ack.Seq, top)
			}
		}
		var fresh struct{ Seq int64 }
		cid := fmt.Sprintf("after-%d", round)
		alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": cid, "body": "after the restart"}, &fresh)
		// Messages committed but not yet acknowledged when the node died
		// keep their seqs too, so a new one may come later than top+1.
		if fresh.Seq <= top {
			t.Fatalf("round %d: a new message got seq %d, not above the highest acknowledged %d", round, fresh.Seq, top)
		}
		acked[fresh.Seq] = cid
		t.Logf("round %d (%s): %d acknowledged in the burst, %d in all", round, mode, len(got), len(acked))
	}
}

// zeroSetupEnv runs a node with nothing configured (whatever the test's
// environment names) on dir and addr, with limits out of a burst's way.
func zeroSetupEnv(dir, addr string) []string {
	env := append(os.Environ(), "MOIM_DATA_DIR="+dir, "MOIM_ADDR="+addr, "MOIM_BCRYPT_COST=4",
		"MOIM_SEND_RATE=100000", "MOIM_SEND_BURST=100000", "MOIM_SEND_LIMIT=off", "MOIM_LOG_LEVEL=warn",
		// The kill test reads its whole history back after every restart.
		"MOIM_SYNC_LIMIT=off")
	for _, v := range []string{"MOIM_REDIS_URL", "MOIM_MONGO_URI", "MOIM_MYSQL_DSN", "MOIM_JWT_SECRET"} {
		env = append(env, v+"=")
	}
	return env
}

// TestASecondNodeCannotTakeADataDirectoryInUse: two zero-setup nodes on
// one data directory would each count seqs in memory and hand out the
// same ones. The second must refuse to start, saying why, and the first
// go on taking messages.
func TestASecondNodeCannotTakeADataDirectoryInUse(t *testing.T) {
	bin := testkit.BuildServer(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	startProcess(t, bin, zeroSetupEnv(dir, addr), dir)
	base := "http://" + addr
	waitHealthy(t, base)
	n := &testNode{url: base}
	alice := n.user(t, "Alice")
	var room struct{ ID int64 }
	alice.must(201, "POST", "/api/rooms", map[string]any{"name": "Mine"}, &room)

	logs := t.TempDir() // the second node's log, beside but not in the first's directory
	second := testkit.Start(t, logs, "second", zeroSetupEnv(dir, fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))), bin)
	code, ended := second.Exit(60 * time.Second)
	if !ended {
		t.Fatal("a second node on a data directory in use is still running after 60 s")
	}
	if code == 0 || !strings.Contains(second.Tail(2000), "in use by another process") {
		t.Fatalf("the second node exited with %d, saying:\n%s\nwant a failure naming the directory in use", code, second.Tail(2000))
	}
	var ack struct{ Seq int64 }
	alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "still-mine", "body": "hello"}, &ack)
	if ack.Seq <= 0 {
		t.Fatalf("the first node acked seq %d", ack.Seq)
	}
}

// burst sends from four goroutines over REST and through sockets until
// the node is stopped by stopNode (during) or for a moment, and returns
// what was acknowledged.
func burst(t *testing.T, base, token string, room int64, round int, sockets []*wsClient, stopNode func(), during bool) map[int64]string {
	t.Helper()
	var mu sync.Mutex
	got := map[int64]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, w := range sockets {
		wg.Go(func() {
			for seq, cid := range pipelinedSends(w, room, fmt.Sprintf("r%d-ws%d", round, i), stop) {
				mu.Lock()
				got[seq] = cid
				mu.Unlock()
			}
		})
	}
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cid := fmt.Sprintf("r%d-g%d-%d", round, g, i)
				seq, ok := post(base, token, room, cid)
				if ok {
					mu.Lock()
					got[seq] = cid
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
	if during {
		stopNode()
	}
	close(stop)
	wg.Wait()
	if len(got) == 0 {
		t.Fatalf("round %d: nothing was acknowledged in the burst", round)
	}
	return got
}

// pipelinedSends keeps up to 32 sends in flight on w until stop (or the
// socket fails), then waits for the acks still due, and returns the
// acknowledged ones by seq.
func pipelinedSends(w *wsClient, room int64, prefix string, stop <-chan struct{}) map[int64]string {
	got := map[int64]string{}
	credit := make(chan struct{}, 32)
	sent := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		for ; ; n++ {
			select {
			case <-stop:
				return
			case credit <- struct{}{}:
			}
			if w.kit.Conn.Send(map[string]any{"type": "send", "room": room, "cid": fmt.Sprintf("%s-%d", prefix, n), "body": "piped"}) != nil {
				return
			}
		}
	}()
	total := -1
	for answered := 0; total < 0 || answered < total; {
		f, err := w.read(2 * time.Second)
		select {
		case total = <-sent:
		default:
		}
		if err != nil {
			if total >= 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
				return got // the node went away, or the acks due never came
			}
			continue
		}
		if f.Type == "ack" || (f.Type == "error" && f.CID != "") {
			answered++
			<-credit
		}
		if f.Type == "ack" {
			got[f.Seq] = f.CID
		}
	}
	return got
}

// post sends one message over REST and reports its seq when it was
// acknowledged (a connection cut by the kill is not).
func post(base, token string, room int64, cid string) (int64, bool) {
	body, _ := json.Marshal(map[string]string{"cid": cid, "body": "burst " + cid})
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/rooms/%d/messages", base, room), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var ack struct{ Seq int64 }
	if resp.StatusCode != 201 || json.NewDecoder(resp.Body).Decode(&ack) != nil {
		return 0, false
	}
	return ack.Seq, true
}

// checkHistory reads the whole history and holds it against acked.
func checkHistory(t *testing.T, c *client, room int64, acked map[int64]string, deleted []int64) {
	t.Helper()
	seen := map[int64]frameMsg{}
	for _, m := range c.history(room) {
		if _, dup := seen[m.Seq]; dup {
			t.Fatalf("seq %d appears twice in the history", m.Seq)
		}
		seen[m.Seq] = m
	}
	for seq, cid := range acked {
		m, ok := seen[seq]
		if !ok {
			t.Fatalf("acknowledged message %s (seq %d) is missing after kill -9; history holds %d messages", cid, seq, len(seen))
		}
		if m.CID != cid {
			t.Fatalf("seq %d holds %s, acknowledged for %s", seq, m.CID, cid)
		}
	}
	for _, seq := range deleted {
		if !seen[seq].Deleted {
			t.Fatalf("message %d was deleted before the kill and is back", seq)
		}
	}
}

func minKey(m map[int64]string, except []int64) int64 {
	skip := map[int64]bool{}
	for _, s := range except {
		skip[s] = true
	}
	var best int64
	for k := range m {
		if !skip[k] && (best == 0 || k < best) {
			best = k
		}
	}
	return best
}

func maxKey(m map[int64]string) int64 {
	var best int64
	for k := range m {
		best = max(best, k)
	}
	return best
}

// nodeProcess is a node binary the test started, stopped by its PID.
type nodeProcess struct{ *testkit.Process }

func startProcess(t *testing.T, bin string, env []string, dir string) *nodeProcess {
	t.Helper()
	return &nodeProcess{testkit.Start(t, dir, "node", env, bin)}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *nodeProcess) kill() { p.Kill() }

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	testkit.WaitReady(t, base)
}
