package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"moim/chatlog"
	"moim/internal/testkit"
	"moim/rooms"
)

// redisConfig is testConfig for a test about the Redis path.
func redisConfig(t *testing.T) Config {
	t.Helper()
	cfg := testConfig(t)
	if cfg.RedisURL == "" {
		t.Fatal("this test is about the Redis path: run it with MOIM_TEST_REDIS_URL")
	}
	return cfg
}

// loseRedisData deletes every key of the node's prefix, as a Redis
// restarted without persistence (or flushed, or failed over to a replica
// that missed the last writes) would have lost them. Only this test's
// prefix goes: other packages' tests share the Redis. Such a loss is at
// once, and these deletions are one key at a time, so the node's mirror
// watcher is held meanwhile: rebuilding between two deletions, it marked
// the mirror whole and then lost the room's set to the next deletion
// (a cluster pass waited 5 s for the member in vain).
func loseRedisData(t *testing.T, n *testNode) {
	t.Helper()
	n.stopWatch()
	_, err := deleteKeys(n.backends.redis, n.cfg.RedisPrefix+":*")
	n.watchMirror(rooms.NewRedisMirror(n.backends.redis, chatlog.Keys{Prefix: n.cfg.RedisPrefix, Shards: n.cfg.StreamShards}))
	if err != nil {
		t.Fatal(err)
	}
}

// waitMember waits for the membership mirror to be rebuilt from SQL
// (within MirrorCheck) after Redis lost it.
func waitMember(t *testing.T, n *testNode, room, user int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ok, err := n.hub.IsMember(context.Background(), room, user); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("user %d not back in room %d's mirror after 5 s", user, room)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendNew posts a new message (cid "new") and fails unless its seq is
// past acked, the highest seq acknowledged before Redis lost data.
func sendNew(t *testing.T, owner *client, room, acked int64) int64 {
	t.Helper()
	var ack struct{ Seq int64 }
	owner.must(201, "POST", urlf("/api/rooms/%d/messages", room), map[string]any{"cid": "new", "body": "new"}, &ack)
	if ack.Seq <= acked {
		t.Fatalf("a new message got seq %d; seqs up to %d were already acknowledged", ack.Seq, acked)
	}
	return ack.Seq
}

var _ = alsoOn(onCluster, TestRedisLosingDataNeverReusesASeq)

// TestRedisLosingDataNeverReusesASeq: 50 messages are acknowledged while
// no batcher runs (none is stored), then Redis loses its data. The next
// message must not get a seq already acknowledged: the counter restarts
// past the reserved block, and the skipped seqs are reported as a gap in
// sync and in the history API, and counted.
func TestRedisLosingDataNeverReusesASeq(t *testing.T) {
	cfg := redisConfig(t)
	cfg.Roles = []string{"api", "hub"} // nothing is stored
	cfg.SendBurst = 100
	n := startTestNode(t, cfg)
	owner, member := n.user(t, "Owner"), n.user(t, "Member")
	room := owner.createRoom(map[string]any{"name": "Fragile", "member_ids": []int64{member.id}})
	w := n.connect(owner)
	for i := range 50 {
		if ack := w.say(room.ID, urlf("m%d", i), "before the loss"); ack.Seq != int64(i+1) {
			t.Fatalf("message %d acknowledged as seq %d", i, ack.Seq)
		}
	}
	loseRedisData(t, n)
	waitMember(t, n, room.ID, owner.id)
	seq := sendNew(t, owner, room.ID, 50)
	var page struct {
		Messages []frameMsg
		Gaps     []chatlog.Gap
	}
	owner.must(200, "GET", urlf("/api/rooms/%d/messages?after=0", room.ID), nil, &page)
	if len(page.Messages) != 1 || page.Messages[0].Seq != seq || len(page.Gaps) != 1 || page.Gaps[0].From != 1 || page.Gaps[0].To != seq-1 {
		t.Fatalf("history after the loss: %+v; want message %d and a gap 1–%d", page, seq, seq-1)
	}
	m := n.connect(member)
	m.send(map[string]any{"type": "sync", "rooms": map[string]int64{urlf("%d", room.ID): 0}})
	if f := m.await("msg"); f.Seq != seq {
		t.Fatalf("sync returned seq %d, want %d", f.Seq, seq)
	}
	if g := m.await("gap"); g.Room != room.ID || g.From != 1 || g.To != seq-1 {
		t.Fatalf("sync reported gap %+v after the messages, want 1–%d", g, seq-1)
	}
	if v := metricValue(t, n, "moim_hub_seq_gaps_total"); v != 1 {
		t.Fatalf("moim_hub_seq_gaps_total = %v, want 1", v)
	}
}

var _ = alsoOn(onCluster, TestRetriedCidAfterRedisLostDataKeepsItsSeq)

// TestRetriedCidAfterRedisLostDataKeepsItsSeq: messages stored by the
// batcher, then Redis loses its data; a client retrying one of them gets
// its original seq from the store, not a second message.
func TestRetriedCidAfterRedisLostDataKeepsItsSeq(t *testing.T) {
	cfg := redisConfig(t)
	n := startTestNode(t, cfg)
	owner := n.user(t, "Owner")
	room := owner.createRoom(map[string]any{"name": "Retry"})
	w := n.connect(owner)
	for i := range 20 {
		w.say(room.ID, urlf("c%d", i), "stored before the loss")
	}
	waitStored(t, n, room.ID, 20)
	loseRedisData(t, n)
	waitMember(t, n, room.ID, owner.id)
	var ack struct{ Seq int64 }
	owner.must(200, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "c4", "body": "stored before the loss"}, &ack)
	if ack.Seq != 5 {
		t.Fatalf("retried cid c4 got seq %d, want its original 5", ack.Seq)
	}
	sendNew(t, owner, room.ID, 20)
	waitStored(t, n, room.ID, 21)
}

var _ = alsoOn(onCluster, TestResendPastTheDedupeWindowKeepsItsSeq)

// TestResendPastTheDedupeWindowKeepsItsSeq: Redis remembers a sent cid
// for one to two dedupe windows (2 s here): a resend in the next window
// still gets the original seq unmarked; a send marked as a resend whose
// cid Redis has forgotten gets its original seq from the store, over the
// WebSocket and REST, and is not delivered again. An unmarked send of a
// forgotten cid is taken as new (the window is all Redis promises
// without the mark), as is a marked resend of a cid never sent.
func TestResendPastTheDedupeWindowKeepsItsSeq(t *testing.T) {
	cfg := redisConfig(t)
	cfg.DedupeWindow = 2 * time.Second
	n := startTestNode(t, cfg)
	owner, member := n.user(t, "Owner"), n.user(t, "Member")
	room := owner.createRoom(map[string]any{"name": "Late", "member_ids": []int64{member.id}})
	w, m := n.connect(owner), n.connect(member)
	first := w.say(room.ID, "c1", "before the window ended")
	second := w.say(room.ID, "c2", "before the window ended")
	third := w.say(room.ID, "c3", "before the window ended")
	waitStored(t, n, room.ID, 3)
	keys := chatlog.Keys{Prefix: cfg.RedisPrefix, Shards: cfg.StreamShards}
	// The cids are kept in one hash per room and window; a window's hash
	// lasts until the end of the next one, whose sends look in it too.
	window := cfg.DedupeWindow.Milliseconds()
	last := third.TS / window
	time.Sleep(time.Until(time.UnixMilli((last + 1) * window)))
	if ack := w.say(room.ID, "c3", "before the window ended"); ack.Seq != third.Seq || ack.TS != third.TS {
		t.Fatalf("c3 resent unmarked in the next window acked as seq %d ts %d, want its original %d %d", ack.Seq, ack.TS, third.Seq, third.TS)
	}
	deadline := time.UnixMilli((last+2)*window + 500)
	for b := first.TS / window; b <= last; b++ {
		for n.backends.redis.Exists(context.Background(), keys.CIDs(room.ID, b)).Val() == 1 {
			if time.Now().After(deadline) {
				t.Fatalf("the cids hash of bucket %d outlived the next bucket", b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	w.send(map[string]any{"type": "send", "room": room.ID, "cid": "c1", "body": "before the window ended", "resend": true})
	if ack := w.await("ack"); ack.CID != "c1" || ack.Seq != first.Seq || ack.TS != first.TS {
		t.Fatalf("resent c1 acked %+v, want its original seq %d and ts %d", ack, first.Seq, first.TS)
	}
	var rest struct{ Seq, TS int64 }
	owner.must(200, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "c2", "body": "before the window ended", "resend": true}, &rest)
	if rest.Seq != second.Seq || rest.TS != second.TS {
		t.Fatalf("resent c2 over REST got seq %d ts %d, want %d %d", rest.Seq, rest.TS, second.Seq, second.TS)
	}
	if ack := w.say(room.ID, "c3", "before the window ended"); ack.Seq != third.Seq+1 {
		t.Fatalf("c3 sent unmarked past the window acked as seq %d, want a new message %d", ack.Seq, third.Seq+1)
	}
	w.send(map[string]any{"type": "send", "room": room.ID, "cid": "never-sent", "body": "new", "resend": true})
	if ack := w.await("ack"); ack.CID != "never-sent" || ack.Seq != third.Seq+2 {
		t.Fatalf("a marked resend of a cid never sent acked %+v, want new seq %d", ack, third.Seq+2)
	}
	for want := first.Seq; want <= third.Seq+2; want++ {
		if got := m.await("msg"); got.Seq != want {
			t.Fatalf("the member got seq %d, want %d: a resend past the window was delivered again", got.Seq, want)
		}
	}
}

// TestSecondMessageUnderOneSeqIsSurfaced: a persistence entry naming a
// stored (room, seq) with a different message, as two messages acked
// under one seq would produce, is refused by the store, logged, counted
// and kept aside, never silently dropped or overwriting the first.
func TestSecondMessageUnderOneSeqIsSurfaced(t *testing.T) {
	cfg := redisConfig(t)
	n := startTestNode(t, cfg)
	owner := n.user(t, "Owner")
	room := owner.createRoom(map[string]any{"name": "Clash"})
	w := n.connect(owner)
	first := w.say(room.ID, "original", "the first message")
	waitStored(t, n, room.ID, 1)
	impostor := chatlog.NewDraft(room.ID, owner.id, "Owner", "a second message under seq 1", "impostor", chatlog.KindText, 0, time.Now().UnixMilli()).Encode(first.Seq)
	keys := chatlog.Keys{Prefix: cfg.RedisPrefix, Shards: cfg.StreamShards}
	if err := n.backends.redis.XAdd(context.Background(), &redis.XAddArgs{Stream: keys.Persist(keys.Shard(room.ID)),
		Values: []any{chatlog.FieldRoom, room.ID, chatlog.FieldSeq, first.Seq, chatlog.FieldMessage, string(impostor)}}).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, n, "moim_store_conflicts_total") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("moim_store_conflicts_total did not reach 1")
		}
		time.Sleep(100 * time.Millisecond)
	}
	msgs, err := n.backends.msgs.After(context.Background(), room.ID, 0, 10)
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0]), `"original"`) {
		t.Fatalf("store holds %q (err %v); want only the original message", msgs, err)
	}
}

// ownRedis starts a redis-server of the test's own (options as
// testkit.StartRedisWith takes them), for a test that restarts it, and
// returns testConfig naming it; restart kills it and starts it again on
// the same port and directory.
func ownRedis(t *testing.T, options ...string) (cfg Config, restart func()) {
	t.Helper()
	port, dir := freePort(t), t.TempDir()
	stop := testkit.StartRedisWith(t, port, dir, options...)
	cfg = testConfig(t)
	cfg.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	return cfg, func() {
		stop()
		stop = testkit.StartRedisWith(t, port, dir, options...)
	}
}

// rewoundRedis starts a node on a redis-server of its own without an
// append-only file, acks 20 messages in one room with a SAVE after the
// 10th, then kills Redis and starts it again from that snapshot: the
// room's seq counter is back, but at 10 of 20 acknowledged, as a restart
// that lost the last second of appendfsync everysec or a failover to a
// replica that missed the last writes leaves it. store says whether the
// node's batcher stores the messages before the kill.
func rewoundRedis(t *testing.T, store bool) (*testNode, *client, roomView) {
	t.Helper()
	cfg, restartRedis := ownRedis(t, "--appendonly", "no")
	if !store {
		cfg.Roles = []string{"api", "hub"} // nothing is stored: only the reserved block bounds what was acked
	}
	cfg.SendBurst = 100
	n := startTestNode(t, cfg)
	owner := n.user(t, "Owner")
	r := owner.createRoom(map[string]any{"name": "Rewound"})
	w := n.connect(owner)
	for i := range 20 {
		if ack := w.say(r.ID, urlf("m%d", i+1), "before the rewind"); ack.Seq != int64(i+1) {
			t.Fatalf("message %d acknowledged as seq %d", i+1, ack.Seq)
		}
		if i+1 == 10 {
			if err := n.backends.redis.Save(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if store {
		waitStored(t, n, r.ID, 20)
	}
	restartRedis()
	eventually(t, "a send accepted after Redis came back", func() bool {
		status, _ := owner.raw("POST", urlf("/api/rooms/%d/messages", r.ID), map[string]any{"cid": "m1", "body": "before the rewind"})
		return status == 200
	})
	return n, owner, r
}

// TestRedisRewoundNeverReusesASeq: after Redis came back with an older
// copy of its data (rewoundRedis), the next message must not get one of
// the seqs 11–20: the counter continues past the reserved block, and the
// skipped seqs are reported as a gap and counted, as when the data is
// lost whole.
func TestRedisRewoundNeverReusesASeq(t *testing.T) {
	n, owner, room := rewoundRedis(t, false)
	seq := sendNew(t, owner, room.ID, 20)
	var page struct {
		Messages []frameMsg
		Gaps     []chatlog.Gap
	}
	owner.must(200, "GET", urlf("/api/rooms/%d/messages?after=10", room.ID), nil, &page)
	if len(page.Gaps) != 1 || page.Gaps[0].From != 11 || page.Gaps[0].To != seq-1 {
		t.Fatalf("history after the rewind reports gaps %+v, want 11–%d", page.Gaps, seq-1)
	}
	if v := metricValue(t, n, "moim_hub_seq_gaps_total"); v != 1 {
		t.Fatalf("moim_hub_seq_gaps_total = %v, want 1", v)
	}
}

// TestRetriedCidAfterRedisRewoundKeepsItsSeq: the messages acked after the
// snapshot were stored before Redis came back with older data, which lost
// their dedupe keys. A client retrying one (its ack was lost) gets its
// original seq, because the restore wrote those keys back from the store
// (before and after the restore alike); so no send has to ask the store
// about its cid afterwards, which on a busy room would cost a store query
// per message for an hour.
func TestRetriedCidAfterRedisRewoundKeepsItsSeq(t *testing.T) {
	n, owner, room := rewoundRedis(t, true)
	for _, retry := range []struct {
		cid  string
		want int64
	}{{"m15", 15}, {"m20", 20}, {"m11", 11}, {"m3", 3}} {
		var ack struct{ Seq int64 }
		owner.must(200, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": retry.cid, "body": "before the rewind"}, &ack)
		if ack.Seq != retry.want {
			t.Fatalf("retried cid %s got seq %d, want its original %d", retry.cid, ack.Seq, retry.want)
		}
	}
	sendNew(t, owner, room.ID, 20)
	keys := chatlog.Keys{Prefix: n.cfg.RedisPrefix, Shards: n.cfg.StreamShards}
	if left, err := n.backends.redis.Exists(context.Background(), keys.Restored(room.ID)).Result(); err != nil || left != 0 {
		t.Fatalf("room still flagged for store look-ups of unknown cids (%d, %v): every new message would query the store", left, err)
	}
	waitStored(t, n, room.ID, 21)
}

// TestCountersFromBeforeInstanceMarksAreKept: a Redis whose counters were
// written by nodes that did not record Redis instances (an upgrade to
// this version) has no instance marks and no counter instances. The
// first node to load the send script marks the shards; the counters
// already there were made under that same instance and are adopted as
// they are: the next message continues the room's seqs, with no gap, as
// it would have without the upgrade.
func TestCountersFromBeforeInstanceMarksAreKept(t *testing.T) {
	cfg, _ := ownRedis(t)
	n := startTestNode(t, cfg)
	owner := n.user(t, "Owner")
	room := owner.createRoom(map[string]any{"name": "Upgraded"})
	w := n.connect(owner)
	for i := range 5 {
		w.say(room.ID, urlf("m%d", i+1), "before the upgrade")
	}
	// What the older nodes left: no marks, and no scripts loaded.
	rdb := n.backends.redis
	for _, pattern := range []string{"*:instance", "*:instance-first", "*:seqinstance"} {
		if _, err := deleteKeys(rdb, cfg.RedisPrefix+pattern); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if ack := w.say(room.ID, "after", "after the upgrade"); ack.Seq != 6 {
		t.Fatalf("the first message after the upgrade got seq %d, want 6", ack.Seq)
	}
	var page struct{ Gaps []chatlog.Gap }
	owner.must(200, "GET", urlf("/api/rooms/%d/messages?after=0", room.ID), nil, &page)
	if len(page.Gaps) != 0 {
		t.Fatalf("history reports gaps %+v after an upgrade that lost nothing", page.Gaps)
	}
}

// TestNewRoomsAfterARedisRestartNeedNoRestore: after Redis restarts (a new
// instance), each room that had messages has its counter restored once
// from the message store; a room opened after the restart starts marked
// with the new instance, so its first message reads nothing from the
// store (restoring every new room cost FerretDB a scan each and stalled a
// 5000-room benchmark stage).
func TestNewRoomsAfterARedisRestartNeedNoRestore(t *testing.T) {
	cfg, restartRedis := ownRedis(t)
	n := startTestNode(t, cfg)
	owner := n.user(t, "Owner")
	old := owner.createRoom(map[string]any{"name": "Before"})
	w := n.connect(owner)
	for i := range 3 {
		w.say(old.ID, urlf("m%d", i), "before the restart")
	}
	restartRedis()
	eventually(t, "a send accepted after Redis came back", func() bool {
		status, _ := owner.raw("POST", urlf("/api/rooms/%d/messages", old.ID), map[string]any{"cid": "after", "body": "after the restart"})
		return status == 201 || status == 200
	})
	for i := range 5 {
		r := owner.createRoom(map[string]any{"name": urlf("After %d", i)})
		if ack := w.say(r.ID, "first", "a new room's first message"); ack.Seq != 1 {
			t.Fatalf("a new room's first message got seq %d, want 1", ack.Seq)
		}
	}
	if v := metricValue(t, n, "moim_hub_seq_restores_total"); v != 1 {
		t.Fatalf("moim_hub_seq_restores_total = %v, want 1 (the room that had messages; none for the 5 new rooms)", v)
	}
}
