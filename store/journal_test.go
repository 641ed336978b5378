package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moim/chatlog"
)

// abandon leaves st as a killed node leaves its data directory: the
// journal as last written, nothing of it settled into the database.
func abandon(t *testing.T, st *SQLite) {
	t.Helper()
	close(st.stop)
	st.done.Wait()
	_ = st.closeJournals()
	_ = st.db.Close()
	_ = st.w.Close()
}

// TestTheJournalKeepsWhatWasAcknowledged: messages committed to the
// journal alone (no transaction) are there, once and under their seqs,
// after the node is killed: the next start writes the journal into the
// database, a frame cut short by the kill is not read, a retried cid
// gets its seq, a new message the next one; and messages in both the
// journal and the database (killed between committing them there and
// emptying the journal) are read once.
func TestTheJournalKeepsWhatWasAcknowledged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	journalFile := filepath.Join(dir, "messages.journal")
	st, err := OpenSQLite(dir, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	first := commitTo(t, st, 1, "a", "b", "c")
	commitTo(t, st, 2, "x", "y")
	if n := waiting(st); n != 5 {
		t.Fatalf("%d messages wait in the journal, want all 5 (nothing moved them)", n)
	}
	if got := commitTo(t, st, 1, "b")[0]; got != (chatlog.Accepted{Seq: first[1].Seq, TS: 42, Dup: true}) {
		t.Fatalf("a retried cid in the journal got %+v, want seq %d again", got, first[1].Seq)
	}
	abandon(t, st)

	// The kill cut the last frame short.
	f, err := os.OpenFile(journalFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7}); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	readsOnce(t, st, map[int64][]int64{1: {1, 2, 3}, 2: {1, 2}})
	if fi, err := os.Stat(journalFile); err != nil || fi.Size() != 0 {
		t.Fatalf("journal after start: %v, %v; want it empty", fi, err)
	}
	if got := commitTo(t, st, 1, "c")[0]; got != (chatlog.Accepted{Seq: 3, TS: 42, Dup: true}) {
		t.Errorf("a retried cid after the restart got %+v, want seq 3 again", got)
	}
	if got := commitTo(t, st, 1, "d")[0]; got.Seq != 4 || got.Dup {
		t.Errorf("a new message after the restart got %+v, want seq 4", got)
	}

	// Killed after the journal's messages were committed to the
	// database and before the journal was emptied.
	held, err := os.ReadFile(journalFile)
	if err != nil || len(held) == 0 {
		t.Fatalf("journal holds %d bytes (%v), want message d", len(held), err)
	}
	moveDue(st, moveEvery, sliceOf(1))
	if err := st.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	if n := waiting(st); n != 0 {
		t.Fatalf("%d messages still wait in the journal after their slice's move", n)
	}
	abandon(t, st)
	if err := os.WriteFile(journalFile, held, 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	readsOnce(t, st, map[int64][]int64{1: {1, 2, 3, 4}, 2: {1, 2}})
}

// TestReadsSeeTheJournal: a read of the database first writes what the
// journal holds into it, so an acknowledged message is never missing
// from history, search or the counts.
func TestReadsSeeTheJournal(t *testing.T) {
	st := openSliced(t)
	commitTo(t, st, 3, "p", "q")
	if n := waiting(st); n != 2 {
		t.Fatalf("%d messages wait in the journal, want 2", n)
	}
	readsOnce(t, st, map[int64][]int64{3: {1, 2}})
	if n := waiting(st); n != 0 {
		t.Errorf("%d messages still wait in the journal after reads", n)
	}
}

// TestAForgottenTopCountsTheJournal: a failed transaction makes the store
// forget the tops of the rooms it touched and read them again; the
// journal's messages are not in the tables yet, so the new top must take
// them in, or their seqs would be given again.
func TestAForgottenTopCountsTheJournal(t *testing.T) {
	st := openSliced(t)
	commitTo(t, st, 5, "m1", "m2", "m3")
	st.mu.Lock()
	delete(st.top, 5) // as a failed transaction touching room 5 does
	st.mu.Unlock()
	if got := commitTo(t, st, 5, "m4")[0]; got.Seq != 4 || got.Dup {
		t.Fatalf("after the top was forgotten a new message got %+v, want seq 4", got)
	}
}

// TestMovesBesideCommits: moves (Tidy) run beside commits, which go on
// into the journal meanwhile; every message must get its room's next
// seq once, be read once, and keep its seq when retried.
func TestMovesBesideCommits(t *testing.T) {
	ctx := context.Background()
	st := openSliced(t)
	const rooms, perRoom = 40, 60
	stop := make(chan struct{})
	moved := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				moved <- nil
				return
			default:
			}
			if err := st.Tidy(ctx); err != nil {
				moved <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	want := map[int64][]int64{}
	var all []*chatlog.Draft
	for i := range perRoom {
		b := &chatlog.Batch{}
		for room := int64(1); room <= rooms; room++ {
			cid := fmt.Sprint("c", room, "-", i)
			b.Drafts = append(b.Drafts, chatlog.NewDraft(room, 7, "n", "회비 "+cid, cid, chatlog.KindText, 0, 42))
		}
		if err := st.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		for j, acc := range b.Accepted {
			room := b.Drafts[j].Room
			if acc.Dup || acc.Seq != int64(len(want[room])+1) {
				t.Fatalf("room %d, message %d: %+v, want seq %d", room, i, acc, len(want[room])+1)
			}
			want[room] = append(want[room], acc.Seq)
		}
		all = append(all, b.Drafts...)
		time.Sleep(time.Millisecond / 2)
	}
	close(stop)
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	readsOnce(t, st, want)
	again := &chatlog.Batch{Drafts: all}
	if err := st.Commit(ctx, again); err != nil {
		t.Fatal(err)
	}
	for i, acc := range again.Accepted {
		if !acc.Dup || acc.Seq != int64(i/rooms+1) {
			t.Fatalf("retry of %s: %+v, want seq %d again", all[i].CID, acc, i/rooms+1)
		}
	}
}

// waiting counts the journaled messages not yet in the messages table.
func waiting(st *SQLite) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.left[0] + st.left[1]
}

// TestTheBatchersMessagesGoThroughTheJournal: messages the batcher read
// (Journal) are kept once the call returns, through a kill; a replayed
// batch is stored once; a different message under a stored seq, and one
// under a seq given in the same batch, are refused by the moves, kept in
// the conflicts table and reported; an edit and a deletion find their
// messages though they were still journaled.
func TestTheBatchersMessagesGoThroughTheJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenSQLite(dir, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	batch := []chatlog.Entry{entry(1, 1, 7, "a", "one"), entry(1, 2, 7, "b", "two"), entry(2, 1, 7, "c", "three")}
	if err := st.Journal(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if n := waiting(st); n != 3 {
		t.Fatalf("%d messages wait in the journal, want 3", n)
	}
	abandon(t, st)
	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var refused []Conflict
	st.SetConflictHandler(func(cs []Conflict) { refused = append(refused, cs...) })
	if n, err := st.Count(ctx, 1); err != nil || n != 2 {
		t.Fatalf("room 1 counts %d messages after the kill (%v), want 2", n, err)
	}

	// The batch again (the batcher re-reads what it did not ack), a
	// clash with a stored message and one inside the batch.
	again := append(batch, entry(1, 2, 9, "x", "impostor"), entry(2, 2, 7, "d", "four"), entry(2, 2, 9, "y", "twin"))
	if err := st.Journal(ctx, again); err != nil {
		t.Fatal(err)
	}
	for slice := range moveSlices {
		moveDue(st, moveEvery, slice)
		if err := st.Tidy(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := waiting(st); n != 0 {
		t.Fatalf("%d messages still wait after a round of moves", n)
	}
	want := []string{"1/2 9/x", "2/2 9/y"}
	var got []string
	for _, c := range refused {
		got = append(got, fmt.Sprintf("%d/%d %s", c.Room, c.Seq, c.Refused))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("moves refused %v, want %v", got, want)
	}
	var kept int
	if err := st.db.QueryRow(`SELECT COUNT(*) FROM conflicts`).Scan(&kept); err != nil || kept != 2 {
		t.Fatalf("conflicts table holds %d rows (%v), want 2", kept, err)
	}
	for room, n := range map[int64]int64{1: 2, 2: 2} {
		if c, err := st.Count(ctx, room); err != nil || c != n {
			t.Fatalf("room %d counts %d messages (%v), want %d", room, c, err, n)
		}
	}

	if err := st.Journal(ctx, []chatlog.Entry{entry(3, 1, 7, "e", "five"), entry(3, 2, 7, "f", "six")}); err != nil {
		t.Fatal(err)
	}
	edited := entry(3, 1, 7, "e", "five, edited")
	edited.Edited = true
	if err := st.Edit(ctx, []chatlog.Entry{edited}); err != nil {
		t.Fatal(err)
	}
	if err := st.Tombstone(ctx, 3, []int64{2}); err != nil {
		t.Fatal(err)
	}
	msgs, err := st.After(ctx, 3, 0, 10)
	if err != nil || len(msgs) != 2 || !strings.Contains(string(msgs[0]), "five, edited") || !strings.Contains(string(msgs[1]), `"deleted":true`) {
		t.Fatalf("room 3 reads %q (%v), want the edit and the deletion", msgs, err)
	}
}
