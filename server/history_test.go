package main

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"moim/chatlog"
	"moim/internal/testkit"
)

type messageList struct {
	Messages []frameMsg `json:"messages"`
}

// waitStored waits until the node's store holds n messages of room.
func waitStored(t *testing.T, n *testNode, room int64, want int64) {
	t.Helper()
	st := n.backends.msgs
	// Generous: a store that has just come back (TestStoreOutageLosesNothing)
	// takes thousands of messages at once on a host that may be loaded.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		// Each count gets its own deadline: a store that accepts the
		// connection but never answers must fail the wait, not hang it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := st.Count(ctx, room)
		cancel()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %d: %d messages stored (err %v), want %d", room, got, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func seqs(ms []frameMsg) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

var _ = alsoOn(onMemory|onCluster, TestHistoryPagesAndSearch)

func TestHistoryPagesAndSearch(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	var ack struct{ Seq int64 }
	for i := 1; i <= 120; i++ {
		body := fmt.Sprintf("message %d", i)
		switch i {
		case 7:
			body = "회비 납부 안내 (.*) {\"$gt\":\"\"}"
		case 77:
			body = "다음 주 회비는 만원입니다"
		}
		alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": fmt.Sprint("h", i), "body": body}, &ack)
		if ack.Seq != int64(i) {
			t.Fatalf("REST send %d got seq %d", i, ack.Seq)
		}
	}
	alice.must(200, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "h5", "body": "message 5"}, &ack)
	if ack.Seq != 5 {
		t.Fatalf("a retried REST send got seq %d, want the original 5", ack.Seq)
	}
	base := urlf("/api/rooms/%d/messages", room.ID)
	// Readable at once, before or after the batcher stored it.
	var l messageList
	bob.must(200, "GET", base, nil, &l)
	if len(l.Messages) != 50 || l.Messages[0].Seq != 120 || l.Messages[49].Seq != 71 {
		t.Fatalf("newest page: %v", seqs(l.Messages))
	}
	waitStored(t, n, room.ID, 120)

	// Page back to the start, newest first.
	var got []int64
	before := ""
	for {
		bob.must(200, "GET", base+"?limit=40"+before, nil, &l)
		if len(l.Messages) == 0 {
			break
		}
		got = append(got, seqs(l.Messages)...)
		before = fmt.Sprint("&before=", l.Messages[len(l.Messages)-1].Seq)
	}
	for i, s := range got {
		if s != int64(120-i) {
			t.Fatalf("paging back: %v", got)
		}
	}
	if len(got) != 120 {
		t.Fatalf("paging back found %d messages", len(got))
	}
	bob.must(200, "GET", base+"?after=100&limit=100", nil, &l)
	if s := seqs(l.Messages); len(s) != 20 || s[0] != 101 || s[19] != 120 {
		t.Fatalf("after 100: %v", s)
	}
	if l.Messages[0].Body != "message 101" || l.Messages[0].From != alice.id || l.Messages[0].Name != "Alice" || l.Messages[0].Kind != "text" {
		t.Fatalf("history entry %+v", l.Messages[0])
	}

	search := func(q string) []int64 {
		var r messageList
		bob.must(200, "GET", base+"/search?q="+url.QueryEscape(q), nil, &r)
		return seqs(r.Messages)
	}
	if s := search("회비"); len(s) != 2 || s[0] != 77 || s[1] != 7 {
		t.Fatalf("search 회비: %v", s)
	}
	if s := search("MESSAGE 11"); len(s) != 11 { // 11, 110..119, newest first
		t.Fatalf("case-insensitive search: %v", s)
	}
	for _, q := range []string{".*", `{"$gt":""}`, "(.*)"} {
		if s := search(q); len(s) != 1 || s[0] != 7 {
			t.Fatalf("search %q must be literal text: %v", q, s)
		}
	}
	if s := search("$where"); len(s) != 0 {
		t.Fatalf("search $where: %v", s)
	}
	bob.fails(400, "validation", "GET", base+"/search?q=", nil)
	bob.fails(400, "validation", "GET", base+"?limit=101", nil)
	bob.fails(400, "validation", "GET", base+"?before=5&after=1", nil)
	bob.fails(400, "validation", "GET", base+"?before=x", nil)
	bob.fails(400, "validation", "POST", base, map[string]any{"cid": "x", "body": ""})
	eve := n.user(t, "Eve")
	eve.fails(403, "not_member", "GET", base, nil)
	eve.fails(403, "not_member", "GET", base+"/search?q=x", nil)
	eve.fails(403, "not_member", "POST", base, map[string]any{"cid": "x", "body": "hi"})
}

var _ = alsoOn(onCluster, TestSeqSurvivesRedisDataLoss)

// TestSeqSurvivesRedisDataLoss flushes everything the node keeps in
// Redis: the membership mirror comes back from SQL, the seq counter from
// the store, and nothing stored is overwritten or duplicated.
func TestSeqSurvivesRedisDataLoss(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})
	w := n.connect(alice)
	for i := 1; i <= 5; i++ {
		w.say(room.ID, fmt.Sprint("a", i), fmt.Sprint("before ", i))
	}
	waitStored(t, n, room.ID, 5)

	if flushed, err := deleteKeys(n.backends.redis, n.cfg.RedisPrefix+":*"); err != nil || flushed == 0 {
		t.Fatalf("flushed %d keys: %v", flushed, err)
	}
	// Sends are refused until the mirror is rebuilt (within MirrorCheck).
	deadline := time.Now().Add(10 * time.Second)
	var ack frameMsg
	for i := 6; ; {
		w.send(map[string]any{"type": "send", "room": room.ID, "cid": fmt.Sprint("a", i), "body": fmt.Sprint("after ", i)})
		f := w.next()
		for f.Type != "ack" && f.Type != "error" {
			f = w.next()
		}
		if f.Type == "ack" {
			ack = f
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sends still refused after flushing Redis: %+v", f)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The counter restarts past the reserved block: Redis may have given
	// out any seq of it before it lost its data.
	if ack.Seq <= 5 {
		t.Fatalf("first seq after Redis lost its data is %d, a seq already given out", ack.Seq)
	}
	waitStored(t, n, room.ID, 6)
	var l struct {
		Messages []frameMsg
		Gaps     []struct{ From, To int64 }
	}
	alice.must(200, "GET", urlf("/api/rooms/%d/messages?after=0", room.ID), nil, &l)
	if s := seqs(l.Messages); len(s) != 6 || s[5] != ack.Seq || l.Messages[4].Body != "before 5" || l.Messages[5].Body != "after 6" {
		t.Fatalf("history after the flush: %+v", l.Messages)
	}
	if len(l.Gaps) != 1 || l.Gaps[0].From != 6 || l.Gaps[0].To != ack.Seq-1 {
		t.Fatalf("history reports gaps %+v, want 6–%d", l.Gaps, ack.Seq-1)
	}
}

// standaloneStore is a FerretDB of the test's own on a free port, for
// nodes that share one store or a store that goes away and comes back.
// It runs as a process of its own (scripts/ferretdb): stopping it
// releases everything its SQLite files were held by, as an outage does.
// Run inside the test process, a FerretDB restarted on the same files
// never answered again: the count of TestStoreOutageLosesNothing timed
// out for two minutes after the restart, on the single Redis and on the
// cluster alike.
type standaloneStore struct {
	t        *testing.T
	bin, dir string
	addr     string
	proc     *testkit.Process
}

// newStandaloneStore starts one and points cfg at it.
func newStandaloneStore(t *testing.T, cfg *Config) *standaloneStore {
	t.Helper()
	s := &standaloneStore{t: t, bin: buildFerret(t), dir: t.TempDir(), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	s.start()
	cfg.MongoURI = "mongodb://" + s.addr + "/moim"
	return s
}

// buildFerret builds scripts/ferretdb (without -race, as it runs in
// production) into a temporary directory.
func buildFerret(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferretdb")
	if out, err := exec.Command("go", "build", "-o", bin, "moim/scripts/ferretdb").CombinedOutput(); err != nil {
		t.Fatalf("go build moim/scripts/ferretdb: %v\n%s", err, out)
	}
	return bin
}

// start runs the store (again) on the same files and address.
func (s *standaloneStore) start() {
	s.t.Helper()
	s.proc = testkit.Start(s.t, s.dir, "ferretdb", nil, s.bin, "-addr", s.addr, "-dir", filepath.Join(s.dir, "data"))
	waitTCP(s.t, s.addr)
}

// stop ends the store's process (SIGTERM).
func (s *standaloneStore) stop() { s.proc.Stop() }

var _ = alsoOn(onCluster, TestStoreOutageLosesNothing)

// TestStoreOutageLosesNothing stops the message store, sends 5,000
// messages, starts it again: all of them end up stored exactly once.
func TestStoreOutageLosesNothing(t *testing.T) {
	cfg := testConfig(t)
	store := newStandaloneStore(t, &cfg)
	cfg.SendRate, cfg.SendBurst = 1e6, 1e6
	n := startTestNode(t, cfg)
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})
	// The room's first message reserves its first block of seqs in the
	// store; then the room takes half a block (5,000) with the store down.
	n.connect(alice).say(room.ID, "first", "while the store is up")
	waitStored(t, n, room.ID, 1)
	store.stop()

	const total, senders = 5000, 10
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		w := n.connect(alice)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < total/senders; i++ {
				w.send(map[string]any{"type": "send", "room": room.ID, "cid": fmt.Sprintf("s%d-%d", s, i), "body": "while the store is down"})
			}
			acks := 0
			for acks < total/senders {
				f, err := w.read(30 * time.Second)
				if err != nil {
					t.Errorf("sender %d: %v after %d acks", s, err, acks)
					return
				}
				if f.Type == "ack" {
					acks++
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// The backlog is measured now and then (the batcher's Backlog), so a
	// read right after the acks may see the measure from before them.
	eventually(t, "the backlog to count the unstored messages while the store is down", func() bool {
		return metricValue(t, n, "moim_store_backlog") >= total/2
	})
	store.start()
	waitStored(t, n, room.ID, total+1)
	var l messageList
	alice.must(200, "GET", urlf("/api/rooms/%d/messages?after=%d&limit=100", room.ID, total-99), nil, &l)
	if s := seqs(l.Messages); len(s) != 100 || s[0] != total-98 || s[99] != total+1 {
		t.Fatalf("the newest stored page: %v", s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, n, "moim_store_backlog") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("backlog did not fall back to zero")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var _ = alsoOn(onCluster, TestDeadBatchersEntriesAreClaimed)

// TestDeadBatchersEntriesAreClaimed leaves entries pending under a
// consumer that never acknowledges them; a live batcher claims them and
// stores each exactly once.
func TestDeadBatchersEntriesAreClaimed(t *testing.T) {
	cfg := testConfig(t)
	if cfg.RedisURL == "" {
		t.Skip("needs a Redis shared by two nodes: set MOIM_TEST_REDIS_URL")
	}
	if cfg.MongoURI == "" { // both nodes need the same store
		newStandaloneStore(t, &cfg)
	}
	api := cfg
	api.Roles = []string{"api", "hub"}
	first := startTestNode(t, api)
	alice := first.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})
	for i := 1; i <= 300; i++ {
		alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": fmt.Sprint("c", i), "body": "x"}, nil)
	}
	// A batcher reads everything and dies before storing it.
	ctx := context.Background()
	rdb := first.backends.redis
	var streams []string
	for s := 0; s < cfg.StreamShards; s++ {
		key := chatlog.Keys{Prefix: cfg.RedisPrefix, Shards: cfg.StreamShards}.Persist(s)
		if err := rdb.XGroupCreateMkStream(ctx, key, "moim-store", "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			t.Fatal(err)
		}
		streams = append(streams, key)
	}
	for _, key := range streams {
		if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "moim-store", Consumer: "dead-node", Streams: []string{key, ">"}, Count: 1000, Block: -1}).Err(); err != nil && err != redis.Nil {
			t.Fatal(err)
		}
	}
	// A node with a batcher claims them once they have idled ClaimIdle.
	second := cfg
	second.DataDir = t.TempDir()
	second.Roles = []string{"batcher"}
	second.ClaimIdle = 300 * time.Millisecond
	n2 := startTestNode(t, second)
	waitStored(t, n2, room.ID, 300)
}

// metricValue reads one sample from a node's /metrics: `name` or
// `name{label="value",…}`.
func metricValue(t testing.TB, n *testNode, name string) float64 {
	t.Helper()
	v, ok := n.metrics(t).Sample(name)
	if !ok {
		t.Fatalf("metric %s not found", name)
	}
	return v
}

// TestBatcherCarriesOnAfterRedisRestarts restarts Redis (append-only, so
// it keeps its data) between batches: the batcher reconnects and stores
// what comes after. The restarted Redis is a new instance that may have
// lost the last acks, so the room's seqs continue past its reserved block
// and history reports the skipped seqs as a gap.
func TestBatcherCarriesOnAfterRedisRestarts(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	stopRedis := startRedis(t, port, dir)
	cfg := testConfig(t)
	cfg.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	n := startTestNode(t, cfg)
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": fmt.Sprint("r", i), "body": fmt.Sprint("message ", i)}, nil)
		}
	}
	send(1, 100)
	waitStored(t, n, room.ID, 100)

	stopRedis()
	startRedis(t, port, dir)
	deadline := time.Now().Add(15 * time.Second)
	for { // the first request after the restart may meet a dead pooled connection
		status, _ := alice.raw("POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "r101", "body": "message 101"})
		if status == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sends still fail after Redis came back: %d", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	send(102, 200)
	waitStored(t, n, room.ID, 200)
	var l struct {
		Messages []frameMsg
		Gaps     []chatlog.Gap
	}
	alice.must(200, "GET", urlf("/api/rooms/%d/messages?after=95&limit=10", room.ID), nil, &l)
	s := seqs(l.Messages)
	if len(s) != 10 || s[0] != 96 || s[4] != 100 || s[5] <= 100 || s[9] != s[5]+4 {
		t.Fatalf("seqs across the restart: %v, want 96–100 then five in a row past the reserved block", s)
	}
	if len(l.Gaps) != 1 || l.Gaps[0].From != 101 || l.Gaps[0].To != s[5]-1 {
		t.Fatalf("history across the restart reports gaps %+v, want 101–%d", l.Gaps, s[5]-1)
	}
}

// TestSyncOfIdleRoomsNeedsNoStore: a client syncing rooms it is up to
// date in, or rooms whose recent stream covers what it missed, is answered
// from Redis alone. A reconnect storm into rooms that never had a message
// used to send every one of those syncs to the message store, exhausting
// its connection pool and stalling the sends queued behind them; with the
// store down they failed outright.
func TestSyncOfIdleRoomsNeedsNoStore(t *testing.T) {
	cfg := testConfig(t)
	store := newStandaloneStore(t, &cfg)
	n := startTestNode(t, cfg)
	alice := n.user(t, "Alice")
	quiet := alice.createRoom(map[string]any{"name": "Quiet"})
	busy := alice.createRoom(map[string]any{"name": "Busy"})
	w := n.connect(alice)
	w.send(map[string]any{"type": "send", "room": busy.ID, "cid": "c1", "body": "first"})
	w.send(map[string]any{"type": "send", "room": busy.ID, "cid": "c2", "body": "second"})
	for acks, msgs := 0, 0; acks < 2 || msgs < 2; { // acks and echoes in any order
		switch f := w.next(); f.Type {
		case "ack":
			acks++
		case "msg":
			msgs++
		case "error":
			t.Fatalf("send: %s %s", f.Code, f.Message)
		}
	}
	store.stop()

	w.send(map[string]any{"type": "sync", "rooms": map[string]int64{
		strconv.FormatInt(quiet.ID, 10): 0,
		strconv.FormatInt(busy.ID, 10):  2,
	}})
	got := map[int64]int64{}
	for len(got) < 2 {
		f := w.await("synced") // an error frame (unavailable) fails here
		got[f.Room] = f.Seq
	}
	if got[quiet.ID] != 0 || got[busy.ID] != 2 {
		t.Fatalf("synced %v, want room %d at 0 and room %d at 2", got, quiet.ID, busy.ID)
	}

	w.send(map[string]any{"type": "sync", "rooms": map[string]int64{strconv.FormatInt(busy.ID, 10): 0}})
	for _, want := range []int64{1, 2} {
		if f := w.await("msg"); f.Seq != want {
			t.Fatalf("sync from 0 sent seq %d, want %d", f.Seq, want)
		}
	}
	if f := w.await("synced"); f.Seq != 2 {
		t.Fatalf("synced %+v, want seq 2", f)
	}
}
