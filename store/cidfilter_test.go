package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"moim/chatlog"
)

// TestTheFilterNeverLosesAKey: every key added is a "maybe", across the
// parts the filter grows into, and few keys never added are.
func TestTheFilterNeverLosesAKey(t *testing.T) {
	f := newCIDFilter()
	f.first, f.started, f.ready = 10_000, true, true
	const n = 15_000 // into the second part
	key := func(i int) cidKey { return cidKey{room: int64(i % 1000), from: int64(i % 7), cid: fmt.Sprint("c", i)} }
	for i := range n {
		f.add(key(i))
	}
	if len(f.parts) != 2 {
		t.Fatalf("%d keys fill %d parts, want 2", n, len(f.parts))
	}
	for i := range n {
		if !f.mayHold(key(i)) {
			t.Fatalf("key %d was added but the filter rules it out", i)
		}
	}
	const absent = 100_000
	maybe := 0
	for i := n; i < n+absent; i++ {
		if f.mayHold(key(i)) {
			maybe++
		}
	}
	if rate := float64(maybe) / absent; rate > 0.03 {
		t.Errorf("%.1f %% of keys never added are a maybe, want about 1.6 %% (two parts)", 100*rate)
	}
	if unready := newCIDFilter(); !unready.mayHold(key(0)) {
		t.Error("a filter whose scan is not done rules a key out")
	}
}

// TestRetriedCIDsAreFoundPastTheFilter: with the filter ready, a retried
// cid whose message is in the messages table, not in the store's memory,
// still gets its seq: one stored by an earlier run (read in by the scan
// at start), one moved by its slice's move, one moved with its slice by
// a deletion's transaction in another room of the slice, and one a
// transaction wrote straight into the table (a batch with a read
// position).
func TestRetriedCIDsAreFoundPastTheFilter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenSQLite(dir, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	earlier := commitTo(t, st, 1, "a", "b", "c")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	commitTo(t, st, 2, "start")
	deadline := time.Now().Add(10 * time.Second)
	for !ready(st) {
		if time.Now().After(deadline) {
			t.Fatal("the filter's scan of the stored cids did not finish in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	retried := func(room int64, cid string, want chatlog.Accepted) {
		t.Helper()
		st.mu.Lock()
		_, inMemory := st.journaled[cidKey{room, 7, cid}]
		st.mu.Unlock()
		if inMemory {
			t.Fatalf("cid %q of room %d is still in the store's memory; the test wants it in the messages table only", cid, room)
		}
		want.Dup = true
		if got := commitTo(t, st, room, cid)[0]; got != want {
			t.Errorf("retried cid %q of room %d got %+v, want %+v", cid, room, got, want)
		}
	}
	retried(1, "b", earlier[1])

	own := commitTo(t, st, 3, "e")
	moveDue(st, time.Hour, 3)
	if err := st.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	retried(3, "e", own[0])

	// A deletion's transaction moves its room's slice's messages first.
	last := commitTo(t, st, 5, "g")
	commitTo(t, st, 5+moveSlices, "x")
	del := &chatlog.Batch{Deletes: []chatlog.Deletion{{Room: 5 + moveSlices, Seq: 1, By: 7}}}
	if err := st.Commit(ctx, del); err != nil || !del.Deletes[0].Done {
		t.Fatalf("deleting seq 1 of room %d: done %v, %v", 5+moveSlices, del.Deletes[0].Done, err)
	}
	retried(5, "g", last[0])

	mixed := &chatlog.Batch{
		Drafts: []*chatlog.Draft{chatlog.NewDraft(6, 7, "n", "회비 h", "h", chatlog.KindText, 0, 42)},
		Reads:  []chatlog.ReadMark{{Room: 1, User: 7, Seq: 2}},
	}
	if err := st.Commit(ctx, mixed); err != nil {
		t.Fatal(err)
	}
	if n := rowsIn(t, st, 6); n != 1 {
		t.Fatalf("a message committed beside a read position: %d rows in the table, want 1", n)
	}
	retried(6, "h", mixed.Accepted[0])
}

func ready(st *SQLite) bool {
	st.cids.mu.Lock()
	defer st.cids.mu.Unlock()
	return st.cids.ready
}

// TestABatchersStoreKeepsNoFilter: a store only the batcher writes (the
// Redis path's) never starts the filter, so it keeps none of its keys.
func TestABatchersStoreKeepsNoFilter(t *testing.T) {
	st, err := OpenSQLite(t.TempDir(), SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	batch := make([]chatlog.Entry, 100)
	for i := range batch {
		batch[i] = entry(1, int64(i+1), 7, fmt.Sprint("c", i), "hello")
	}
	if err := st.Insert(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	st.cids.mu.Lock()
	defer st.cids.mu.Unlock()
	if len(st.cids.parts) != 0 || st.cids.started {
		t.Errorf("the batcher's store keeps a filter of %d parts (started %v), want none", len(st.cids.parts), st.cids.started)
	}
}
