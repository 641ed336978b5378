package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"moim/chatlog"
	"moim/internal/testkit"
)

// stores returns the stores every test runs against: SQLite always, and
// MongoDB (or FerretDB, which speaks its protocol) at MOIM_TEST_MONGO_URI,
// which make test starts; under CI=true it must be there.
func stores(t *testing.T) map[string]Store {
	t.Helper()
	sq, err := OpenSQLite(t.TempDir(), SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sq.Close() })
	out := map[string]Store{"sqlite": sq}
	uri := testkit.Optional(t, testkit.EnvMongo, "testing the SQLite store only; the Mongo store needs a MongoDB-wire server (FerretDB)")
	if uri == "" {
		return out
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := client.Database("moim_st_" + hex.EncodeToString(b))
	t.Cleanup(func() {
		_ = db.Drop(context.Background())
		_ = client.Disconnect(context.Background())
	})
	m, err := OpenMongo(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	out["mongo"] = m
	return out
}

// entry is a stored message as the batcher reads it from Redis.
func entry(room, seq, from int64, cid, body string) chatlog.Entry {
	raw := chatlog.NewDraft(room, from, "name", body, cid, chatlog.KindText, 0, 1000+seq).Encode(seq)
	e, err := chatlog.DecodeEntry(map[string]any{chatlog.FieldMessage: string(raw)})
	if err != nil {
		panic(err)
	}
	return e
}

func seqs(t *testing.T, msgs [][]byte) []int64 {
	t.Helper()
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		var v chatlog.Message
		if err := json.Unmarshal(m, &v); err != nil {
			t.Fatalf("stored message %s: %v", m, err)
		}
		out[i] = v.Seq
	}
	return out
}

func TestInsertReadBackAndReplay(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			batch := []chatlog.Entry{entry(1, 1, 7, "a", "hello"), entry(1, 2, 8, "b", "Dues are due"), entry(1, 3, 7, "c", "100% sure_")}
			if err := st.Insert(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if err := st.Insert(ctx, batch); err != nil {
				t.Fatalf("a replayed batch is not an error: %v", err)
			}
			if n, _ := st.Count(ctx, 1); n != 3 {
				t.Fatalf("count %d after a replay, want 3", n)
			}
			after, _ := st.After(ctx, 1, 1, 10)
			before, _ := st.Before(ctx, 1, 0, 10)
			if got := seqs(t, after); len(got) != 2 || got[0] != 2 || got[1] != 3 {
				t.Fatalf("after 1: %v", got)
			}
			if got := seqs(t, before); len(got) != 3 || got[0] != 3 {
				t.Fatalf("before newest: %v", got)
			}
			if top, _ := st.MaxSeq(ctx, 1); top != 3 {
				t.Fatalf("max seq %d", top)
			}
			for q, want := range map[string]int{"dues": 1, "%": 1, "_": 1, "x": 0} {
				found, err := st.Search(ctx, 1, q, 10)
				if err != nil || len(found) != want {
					t.Fatalf("search %q: %d found (err %v), want %d", q, len(found), err, want)
				}
			}
			if err := st.Tombstone(ctx, 1, []int64{2}); err != nil {
				t.Fatal(err)
			}
			got, _ := st.After(ctx, 1, 1, 1)
			var m chatlog.Message
			_ = json.Unmarshal(got[0], &m)
			if !m.Deleted || m.Body != "" || m.Seq != 2 {
				t.Fatalf("deleted message reads %s", got[0])
			}
			if found, _ := st.Search(ctx, 1, "dues", 10); len(found) != 0 {
				t.Fatal("search found a deleted message")
			}
		})
	}
}

func TestASecondMessageUnderOneSeqIsRefused(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if err := st.Insert(ctx, []chatlog.Entry{entry(2, 1, 7, "first", "kept")}); err != nil {
				t.Fatal(err)
			}
			err := st.Insert(ctx, []chatlog.Entry{entry(2, 1, 9, "other", "refused"), entry(2, 2, 9, "next", "stored")})
			var ce *ConflictError
			if !errors.As(err, &ce) || len(ce.Conflicts) != 1 || ce.Conflicts[0].Seq != 1 || ce.Conflicts[0].Refused != "9/other" {
				t.Fatalf("insert of a different message under a stored seq: %v, want one conflict at seq 1", err)
			}
			got, _ := st.After(ctx, 2, 0, 10)
			if len(got) != 2 || !strings.Contains(string(got[0]), `"kept"`) {
				t.Fatalf("room holds %q; the first message and the next one should be stored", got)
			}
		})
	}
}

func TestSeqReservationsGapsCidsAndReads(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if hi, err := st.ReserveSeqs(ctx, 3, 0); err != nil || hi != 0 {
				t.Fatalf("fresh room reserved %d, err %v", hi, err)
			}
			var wg sync.WaitGroup
			for _, n := range []int64{1000, 3000, 2000} {
				wg.Go(func() {
					if _, err := st.ReserveSeqs(ctx, 3, n); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if hi, _ := st.ReserveSeqs(ctx, 3, 10); hi != 3000 {
				t.Fatalf("reservation %d after reserving 1000, 3000 and 2000; it must never go down", hi)
			}
			if err := st.AddGap(ctx, chatlog.Gap{Room: 3, From: 51, To: 1000}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				from, to int64
				want     int
			}{{1, 50, 0}, {40, 60, 1}, {1000, 1200, 1}, {1001, 1200, 0}} {
				if g, _ := st.Gaps(ctx, 3, c.from, c.to); len(g) != c.want {
					t.Fatalf("gaps over %d..%d: %v, want %d", c.from, c.to, g, c.want)
				}
			}
			_ = st.Insert(ctx, []chatlog.Entry{entry(3, 5, 7, "retry-me", "x")})
			if acc, found, err := st.FindCID(ctx, 3, 7, "retry-me"); err != nil || !found || acc.Seq != 5 || acc.TS != 1005 {
				t.Fatalf("find cid: %+v %v %v", acc, found, err)
			}
			if _, found, _ := st.FindCID(ctx, 3, 8, "retry-me"); found {
				t.Fatal("another user's cid was found")
			}
			_ = st.SaveReads(ctx, []chatlog.ReadMark{{Room: 3, User: 7, Seq: 5}, {Room: 3, User: 8, Seq: 2}})
			_ = st.SaveReads(ctx, []chatlog.ReadMark{{Room: 3, User: 7, Seq: 3}})
			if r, _ := st.ReadPositions(ctx, 3); r[7] != 5 || r[8] != 2 {
				t.Fatalf("read positions %v; a lower one must not replace a higher one", r)
			}
		})
	}
}

func TestCommitGivesSeqsOnceAndKeepsThem(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenSQLite(dir, SyncFull)
	if err != nil {
		t.Fatal(err)
	}
	draft := func(room, from int64, cid string) *chatlog.Draft {
		return chatlog.NewDraft(room, from, "n", "body "+cid, cid, chatlog.KindText, 0, 42)
	}
	b := &chatlog.Batch{Drafts: []*chatlog.Draft{draft(1, 7, "a"), draft(2, 7, "a"), draft(1, 8, "a"), draft(1, 7, "a")}}
	if err := st.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	want := []chatlog.Accepted{{Seq: 1, TS: 42}, {Seq: 1, TS: 42}, {Seq: 2, TS: 42}, {Seq: 1, TS: 42, Dup: true}}
	for i, w := range want {
		if b.Accepted[i] != w {
			t.Fatalf("draft %d: %+v, want %+v", i, b.Accepted[i], w)
		}
	}
	b = &chatlog.Batch{Deletes: []chatlog.Deletion{{Room: 1, Seq: 2, By: 8}, {Room: 1, Seq: 2, By: 8}}, Reads: []chatlog.ReadMark{{Room: 1, User: 7, Seq: 2}}}
	if err := st.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if !b.Deletes[0].Done || b.Deletes[1].Done {
		t.Fatalf("deletions %+v: the first deletes, the second finds it deleted", b.Deletes)
	}
	_ = st.Close()
	// Reopened, as after a restart: seqs continue, retries find their seq.
	if st, err = OpenSQLite(dir, SyncFull); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b = &chatlog.Batch{Drafts: []*chatlog.Draft{draft(1, 8, "a"), draft(1, 9, "b")}}
	if err := st.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if b.Accepted[0] != (chatlog.Accepted{Seq: 2, TS: 42, Dup: true}) || b.Accepted[1].Seq != 3 {
		t.Fatalf("after reopening: %+v", b.Accepted)
	}
	if r, _ := st.ReadPositions(ctx, 1); r[7] != 2 {
		t.Fatalf("read positions after reopening: %v", r)
	}
	if got, _ := st.After(ctx, 1, 1, 1); !strings.Contains(string(got[0]), `"deleted":true`) {
		t.Fatalf("deleted message after reopening: %s", got[0])
	}
}

// TestCommitsReachTheDatabaseFileWhileTheWriterGoesOn: what commits write
// to the write-ahead log is copied into the database file within moments
// by the checkpointer, not left for the writer to copy after some commit
// (holding every ack behind it) once the log is 40 MB long.
func TestCommitsReachTheDatabaseFileWhileTheWriterGoesOn(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenSQLite(dir, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	file := filepath.Join(dir, "messages.db")
	size := func() int64 {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Settled: the schema's pages copied.
	for before, deadline := int64(-1), time.Now().Add(10*time.Second); ; {
		time.Sleep(200 * time.Millisecond)
		if now := size(); now == before || time.Now().After(deadline) {
			break
		} else {
			before = now
		}
	}
	before := size()
	body := strings.Repeat("회비 ", 400) // 2.4 KB
	for i := range 200 {
		cid := strconv.Itoa(i)
		d := chatlog.NewDraft(int64(1+i%20), 7, "n", body+cid, cid, chatlog.KindText, 0, 42)
		if err := st.Commit(ctx, &chatlog.Batch{Drafts: []*chatlog.Draft{d}}); err != nil {
			t.Fatal(err)
		}
	}
	// Moves take the journal's messages into the messages table.
	if err := st.settle(ctx, everySlice); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for size()-before < 200<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("200 commits of 2.4 KB: the database file grew by %d bytes in 10 s; the log was not copied into it", size()-before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCommittedMessagesReadTheSameBeforeAndAfterTheyMove: a commit appends
// to the log table, and a later one moves the log into the messages
// table. Reads, searches, the highest seq and retried cids must not tell
// where a message sits: in the log, moved, or moved by a restart.
func TestCommittedMessagesReadTheSameBeforeAndAfterTheyMove(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenSQLite(dir, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	commit := func(st *SQLite, b *chatlog.Batch) *chatlog.Batch {
		t.Helper()
		if err := st.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	drafts := func(from int, cids ...string) *chatlog.Batch {
		b := &chatlog.Batch{}
		for _, cid := range cids {
			b.Drafts = append(b.Drafts, chatlog.NewDraft(1, int64(from), "n", "가을 소풍 "+cid, cid, chatlog.KindText, 0, 42))
		}
		return b
	}
	check := func(st *SQLite, where string, top, searchable int64) {
		t.Helper()
		after, err := st.After(ctx, 1, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		before, err := st.Before(ctx, 1, 0, 2)
		if err != nil {
			t.Fatal(err)
		}
		found, err := st.Search(ctx, 1, "소풍 c", 100)
		if err != nil {
			t.Fatal(err)
		}
		maxSeq, err := st.MaxSeq(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		n, err := st.Count(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]int64, top)
		for i := range want {
			want[i] = int64(i + 1)
		}
		if got := seqs(t, after); !slices.Equal(got, want) {
			t.Errorf("%s: After gives seqs %v, want %v", where, got, want)
		}
		if got := seqs(t, before); !slices.Equal(got, []int64{top, top - 1}) {
			t.Errorf("%s: Before gives seqs %v, want [%d %d]", where, got, top, top-1)
		}
		if int64(len(found)) != searchable || maxSeq != top || n != top {
			t.Errorf("%s: search found %d, highest seq %d, count %d; want %d, %d, %d", where, len(found), maxSeq, n, searchable, top, top)
		}
		retry := commit(st, drafts(7, "c1", "c3"))
		if retry.Accepted[0] != (chatlog.Accepted{Seq: 1, TS: 42, Dup: true}) || retry.Accepted[1] != (chatlog.Accepted{Seq: 3, TS: 42, Dup: true}) {
			t.Errorf("%s: retried cids got %+v, want seqs 1 and 3 again", where, retry.Accepted)
		}
	}

	commit(st, drafts(7, "c1", "c2"))
	commit(st, drafts(7, "c3"))
	check(st, "in the log", 3, 3)

	// A deletion moves the log first, then finds the message to delete.
	del := commit(st, &chatlog.Batch{Deletes: []chatlog.Deletion{{Room: 1, Seq: 3, By: 7}}})
	if !del.Deletes[0].Done {
		t.Fatal("a message still in the log could not be deleted")
	}
	commit(st, drafts(8, "c4"))
	check(st, "moved, and one more in the log", 4, 3) // search skips the deleted one

	// Reopening moves what the last run left in the log.
	_ = st.Close()
	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	check(st, "after reopening", 4, 3)
	if next := commit(st, drafts(9, "c5")); next.Accepted[0].Seq != 5 {
		t.Fatalf("after reopening the next message got seq %d, want 5", next.Accepted[0].Seq)
	}
}

// TestMoveBySliceKeepsEveryRoomReadableAndRetriesDeduped: moves take
// the journal's messages into the messages table one slice of rooms at a
// time. A retried cid must get its seq back whether its room's slice
// moved or not, and a room whose slice moved and one whose slice did not
// must both read all their messages in order.
func TestMoveBySliceKeepsEveryRoomReadableAndRetriesDeduped(t *testing.T) {
	ctx := context.Background()
	st := openSliced(t)
	// Rooms roomA and roomB fall in slices 0 and 1.
	roomA, roomB := int64(moveSlices), int64(moveSlices+1)
	send := func(room int64, cids ...string) []chatlog.Accepted { return commitTo(t, st, room, cids...) }
	send(roomA, "a1", "a2")
	send(roomB, "b1", "b2")
	moveDue(st, moveEvery, 0)
	if err := st.Tidy(ctx); err != nil {
		t.Fatal(err)
	}
	send(roomB, "b3")
	if a, b := rowsIn(t, st, roomA), rowsIn(t, st, roomB); a != 2 || b != 0 {
		t.Fatalf("after moving slice 0: roomA has %d messages in the table, roomB %d; want 2, 0", a, b)
	}
	if got := send(roomA, "a2")[0]; got != (chatlog.Accepted{Seq: 2, TS: 42, Dup: true}) {
		t.Errorf("retried cid of a moved room got %+v, want seq 2 again", got)
	}
	if got := send(roomB, "b1")[0]; got != (chatlog.Accepted{Seq: 1, TS: 42, Dup: true}) {
		t.Errorf("retried cid of a room still in the journal got %+v, want seq 1 again", got)
	}
	if got := send(roomA, "a3")[0]; got.Seq != 3 || got.Dup {
		t.Errorf("a new message of a moved room got %+v, want seq 3", got)
	}
	readsOnce(t, st, map[int64][]int64{roomA: {1, 2, 3}, roomB: {1, 2, 3}})
}

// TestTidyMovesOneSliceWhenItsTurnComes: commits only append to the
// journal; Tidy moves the next slice's messages once moveEvery/moveSlices
// has passed since the last move, and only that slice's.
func TestTidyMovesOneSliceWhenItsTurnComes(t *testing.T) {
	ctx := context.Background()
	st := openSliced(t)
	room, other := int64(moveSlices), int64(moveSlices+1) // slices 0 and 1
	send := func(cid string) { commitTo(t, st, room, cid); commitTo(t, st, other, cid) }
	tidy := func() {
		t.Helper()
		if err := st.Tidy(ctx); err != nil {
			t.Fatal(err)
		}
	}
	send("a")
	moveDue(st, 0, 0)
	tidy()
	send("b")
	if n := rowsIn(t, st, room); n != 0 {
		t.Fatalf("Tidy with no move due, or a commit, moved %d messages, want 0", n)
	}
	moveDue(st, moveEvery/moveSlices, 0)
	tidy()
	if n, o := rowsIn(t, st, room), rowsIn(t, st, other); n != 2 || o != 0 {
		t.Fatalf("Tidy with slice 0's move due moved %d of its messages and %d of slice 1's, want 2 and 0", n, o)
	}
	tidy() // slice 1 is next, its turn not come yet
	if o := rowsIn(t, st, other); o != 0 {
		t.Fatalf("Tidy right after a move moved %d messages of the next slice, want 0", o)
	}
	moveDue(st, moveEvery/moveSlices, 1)
	tidy()
	if o := rowsIn(t, st, other); o != 2 {
		t.Fatalf("Tidy with slice 1's move due moved %d of its messages, want 2", o)
	}
	readsOnce(t, st, map[int64][]int64{room: {1, 2}, other: {1, 2}})
}

// TestReadsAndDeletionsMoveOnlyTheirRoomsSlice: a read of a room and a
// deletion need their room's messages in the table, not every room's:
// they move their room's slice only, and the other rooms' messages wait
// in the journal for their turn.
func TestReadsAndDeletionsMoveOnlyTheirRoomsSlice(t *testing.T) {
	ctx := context.Background()
	st := openSliced(t)
	roomA, roomB, roomC := int64(moveSlices), int64(moveSlices+1), int64(moveSlices+2) // slices 0, 1, 2
	commitTo(t, st, roomA, "a1", "a2")
	commitTo(t, st, roomB, "b1")
	commitTo(t, st, roomC, "c1")
	if n, err := st.Count(ctx, roomA); err != nil || n != 2 {
		t.Fatalf("count of roomA: %d, %v; want 2", n, err)
	}
	if a, b, c := rowsIn(t, st, roomA), rowsIn(t, st, roomB), rowsIn(t, st, roomC); a != 2 || b != 0 || c != 0 {
		t.Fatalf("after reading roomA the table holds %d, %d, %d messages of rooms A, B, C; want 2, 0, 0", a, b, c)
	}
	del := &chatlog.Batch{Deletes: []chatlog.Deletion{{Room: roomC, Seq: 1, By: 7}}}
	if err := st.Commit(ctx, del); err != nil {
		t.Fatal(err)
	}
	if !del.Deletes[0].Done {
		t.Fatal("the deletion of roomC's message did not find it")
	}
	if b, c := rowsIn(t, st, roomB), rowsIn(t, st, roomC); b != 0 || c != 1 {
		t.Fatalf("after deleting in roomC the table holds %d, %d messages of rooms B, C; want 0, 1", b, c)
	}
	readsOnce(t, st, map[int64][]int64{roomA: {1, 2}, roomB: {1}})
}

// TestMovesQuickenOnceAJournalIsBusy: a slice's turn comes every
// moveEvery/moveSlices, and every moveEveryBusy/moveSlices once the
// journal appended to holds journalBusy bytes.
func TestMovesQuickenOnceAJournalIsBusy(t *testing.T) {
	st := openSliced(t)
	commitTo(t, st, 1, "a")
	st.mu.Lock()
	defer st.mu.Unlock()
	st.moved = time.Now().Add(-moveEveryBusy / moveSlices)
	quiet := st.due()
	st.jr[st.cur].size += journalBusy
	busy := st.due()
	st.jr[st.cur].size -= journalBusy
	if quiet || !busy {
		t.Fatalf("a move %v after the last: due %v with a small journal (want false), %v with a busy one (want true)", moveEveryBusy/moveSlices, quiet, busy)
	}
}

// openSliced opens a SQLite store of the test's own for the tests of
// the log's moves.
func openSliced(t *testing.T) *SQLite {
	t.Helper()
	st, err := OpenSQLite(t.TempDir(), SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// commitTo commits one message per cid to room, from user 7 at ts 42.
func commitTo(t *testing.T, st *SQLite, room int64, cids ...string) []chatlog.Accepted {
	t.Helper()
	b := &chatlog.Batch{}
	for _, cid := range cids {
		b.Drafts = append(b.Drafts, chatlog.NewDraft(room, 7, "n", "회비 "+cid, cid, chatlog.KindText, 0, 42))
	}
	if err := st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return b.Accepted
}

// rowsIn counts room's rows in the messages table.
func rowsIn(t *testing.T, st *SQLite, room int64) (n int) {
	t.Helper()
	if err := st.db.QueryRow(`SELECT COUNT(*) FROM messages WHERE room = ?`, room).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// moveDue makes slice the next to move, its last move ago.
func moveDue(st *SQLite, ago time.Duration, slice int) {
	st.mu.Lock()
	st.slice, st.moved = slice, time.Now().Add(-ago)
	st.mu.Unlock()
}

// readsOnce checks each room reads exactly want's seqs: forwards,
// backwards, by search and counted.
func readsOnce(t *testing.T, st *SQLite, want map[int64][]int64) {
	t.Helper()
	ctx := context.Background()
	for room, seqsWant := range want {
		after, err := st.After(ctx, room, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		before, err := st.Before(ctx, room, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		found, err := st.Search(ctx, room, "회비", 1000)
		if err != nil {
			t.Fatal(err)
		}
		n, err := st.Count(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		back := seqs(t, before)
		slices.Reverse(back)
		if got := seqs(t, after); !slices.Equal(got, seqsWant) || !slices.Equal(back, seqsWant) || len(found) != len(seqsWant) || n != int64(len(seqsWant)) {
			t.Errorf("room %d reads seqs %v forwards, %v backwards, %d found, counts %d; want %v", room, got, back, len(found), n, seqsWant)
		}
	}
}

// TestTheJournalsEmptyRoundByRound: while messages keep coming, a
// journal is emptied at the end of the round of moves after the one it
// was appended to, so the journals hold about two rounds of messages
// however long the node runs, and nothing once every message moved;
// every read sees each message once throughout; and what the journals
// hold when the node is killed is there when it starts again.
func TestTheJournalsEmptyRoundByRound(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenSQLite(dir, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64][]int64{}
	n := 0
	// turn sends one message to each of rooms, then lets the next
	// slice's move come, as a second of traffic does moveSlices times.
	turn := func(rooms ...int64) {
		t.Helper()
		b := &chatlog.Batch{}
		for _, room := range rooms {
			n++
			b.Drafts = append(b.Drafts, chatlog.NewDraft(room, 7, "n", fmt.Sprint("회비 ", n), fmt.Sprint("c", n), chatlog.KindText, 0, int64(n)))
		}
		if err := st.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		for i, room := range rooms {
			want[room] = append(want[room], b.Accepted[i].Seq)
		}
		st.mu.Lock()
		st.moved = time.Now().Add(-moveEvery)
		st.mu.Unlock()
		if err := st.Tidy(ctx); err != nil {
			t.Fatal(err)
		}
	}
	journaled := func() (size int64) {
		t.Helper()
		for _, name := range journalNames {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			size += fi.Size()
		}
		return size
	}
	for i := range moveSlices {
		turn(int64(i%7+1), int64(i%moveSlices+100))
	}
	round := journaled() // one round of messages, none moved out of the journal yet
	for i := range 4 * moveSlices {
		turn(int64(i%7+1), int64(i%moveSlices+100))
		if i%moveSlices == moveSlices/2 {
			readsOnce(t, st, want)
		}
	}
	if size := journaled(); size > 5*round/2 {
		t.Errorf("after five rounds of moves the journals hold %d bytes, want about two rounds' (%d each) at most", size, round)
	}
	// The node is killed mid-round: the next start finds every message.
	for i := range moveSlices / 2 {
		turn(int64(i%7+1), int64(i%moveSlices+100))
	}
	abandon(t, st)
	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	readsOnce(t, st, want)
	// No new messages: once the rooms that had some moved, the journals
	// are empty.
	for i := range 2 * moveSlices {
		turn(int64(i%7 + 1))
	}
	for range moveSlices {
		turn()
	}
	if size := journaled(); size != 0 {
		t.Errorf("a round without messages left %d bytes in the journals, want 0", size)
	}
	readsOnce(t, st, want)
	turn(1, 2, 3)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	readsOnce(t, st, want)
}

// TestAJournalIsEmptiedOnlyOnceItsMessagesMoved: a move that fails (here a
// trigger refuses its room's rows, as a full disk would) leaves its messages in the journal
// they were appended to, and that journal is not emptied at the round's
// end until they moved, while every other slice's messages go on moving:
// a node killed meanwhile loses nothing.
func TestAJournalIsEmptiedOnlyOnceItsMessagesMoved(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenSQLite(dir, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	stuck := int64(moveSlices + 5) // slice 5
	commitTo(t, st, stuck, "a")
	block := func(query string) {
		t.Helper()
		if err := st.write(ctx, "block", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, query)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	block(fmt.Sprintf(`CREATE TRIGGER stuck BEFORE INSERT ON messages WHEN NEW.room = %d BEGIN SELECT RAISE(ABORT, 'no space'); END`, stuck))
	// One message a turn for the slice about to move (slice 6's in slice
	// 5's turn), through two rounds and the start of a third.
	other := 2*moveSlices + 1
	for i := range other {
		room := int64(2*moveSlices + i%moveSlices)
		if sliceOf(room) == 5 {
			room++
		}
		commitTo(t, st, room, fmt.Sprint("o", i))
		moveDue(st, moveEvery, i%moveSlices)
		err := st.Tidy(ctx)
		if (i%moveSlices == 5) != (err != nil) {
			t.Fatalf("move of slice %d: %v", i%moveSlices, err)
		}
	}
	if n := waiting(st); n != 1 {
		t.Fatalf("%d messages wait to move, want only the one whose move failed", n)
	}
	block(`DROP TRIGGER stuck`)
	abandon(t, st)
	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	readsOnce(t, st, map[int64][]int64{stuck: {1}})
	var moved int
	if err := st.db.QueryRow(`SELECT COUNT(*) FROM messages WHERE room >= ?`, 2*moveSlices).Scan(&moved); err != nil || moved != other {
		t.Fatalf("%d of the other slices' %d messages read after the restart (%v)", moved, other, err)
	}
}

// TestAnEarlierVersionsLogMovesAtStart: a database an earlier version
// left with messages in its log table (between the journal and the
// messages table then) reads them all after the start, which drops the
// table.
func TestAnEarlierVersionsLogMovesAtStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenSQLite(dir, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	commitTo(t, st, 1, "a")
	if err := st.settle(ctx, everySlice); err != nil {
		t.Fatal(err)
	}
	if err := st.write(ctx, "an old log", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE log (room INTEGER NOT NULL, seq INTEGER NOT NULL, from_user INTEGER NOT NULL,
			cid TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL, msg BLOB NOT NULL)`); err != nil {
			return err
		}
		// Seq 1 copied already (in both tables), seq 2 not yet.
		_, err := tx.ExecContext(ctx, `INSERT INTO log SELECT room, seq, from_user, cid, ts, body, msg FROM messages;
			INSERT INTO log SELECT room, 2, from_user, 'b', ts, body, msg FROM messages`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var tables int
	if err := st.db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'log'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("the log table is still there after the start (%d, %v)", tables, err)
	}
	if n, err := st.Count(ctx, 1); err != nil || n != 2 {
		t.Fatalf("room 1 counts %d messages (%v), want 2", n, err)
	}
	if got := commitTo(t, st, 1, "b")[0]; got != (chatlog.Accepted{Seq: 2, TS: 42, Dup: true}) {
		t.Errorf("a retried cid moved from the old log got %+v, want seq 2 again", got)
	}
}

// TestCommitOfManyFindsEveryRetry: a commit runs its inserts and cid
// lookups in chunks of rows (64, 16, 4, 1); a batch that spans several
// chunks, with retries of messages in the messages table, in the log and
// earlier in the same batch, must give each draft what one at a time
// would.
func TestCommitOfManyFindsEveryRetry(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenSQLite(dir, SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	draft := func(i int) *chatlog.Draft {
		return chatlog.NewDraft(int64(i%3+1), int64(i%5+1), "n", fmt.Sprint("body ", i), fmt.Sprint("c", i), chatlog.KindText, 0, int64(i))
	}
	first := &chatlog.Batch{}
	for i := range 85 {
		first.Drafts = append(first.Drafts, draft(i))
	}
	if err := st.Commit(ctx, first); err != nil {
		t.Fatal(err)
	}
	seqs := map[int64]int64{}
	for i, acc := range first.Accepted {
		room := first.Drafts[i].Room
		if acc.Dup || acc.Seq != seqs[room]+1 {
			t.Fatalf("draft %d: %+v, want seq %d", i, acc, seqs[room]+1)
		}
		seqs[room] = acc.Seq
	}
	_ = st.Close()
	// Reopened, the first 85 sit in the messages table.
	if st, err = OpenSQLite(dir, SyncNormal); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	second := &chatlog.Batch{}
	for i := range 90 { // 85 retries and 5 new ones
		second.Drafts = append(second.Drafts, draft(i))
	}
	second.Drafts = append(second.Drafts, draft(87), draft(3)) // a retry of a new one, and a second retry
	if err := st.Commit(ctx, second); err != nil {
		t.Fatal(err)
	}
	for i, acc := range second.Accepted {
		var want chatlog.Accepted
		switch {
		case i < 85:
			want = chatlog.Accepted{Seq: first.Accepted[i].Seq, TS: int64(i), Dup: true}
		case i < 90:
			room := second.Drafts[i].Room
			seqs[room]++
			want = chatlog.Accepted{Seq: seqs[room], TS: int64(i)}
		case i == 90:
			want = chatlog.Accepted{Seq: second.Accepted[87].Seq, TS: 87, Dup: true}
		default:
			want = chatlog.Accepted{Seq: first.Accepted[3].Seq, TS: 3, Dup: true}
		}
		if acc != want {
			t.Fatalf("draft %d: %+v, want %+v", i, acc, want)
		}
		if want.Dup != (second.Encoded[i] == nil) {
			t.Fatalf("draft %d: encoded %q for %+v", i, second.Encoded[i], acc)
		}
	}
	// And the log holds each new one once: a third commit retrying them
	// all is all retries.
	third := &chatlog.Batch{Drafts: second.Drafts}
	if err := st.Commit(ctx, third); err != nil {
		t.Fatal(err)
	}
	for i, acc := range third.Accepted {
		if !acc.Dup || acc.Seq != second.Accepted[i].Seq {
			t.Fatalf("third commit, draft %d: %+v, want a retry of seq %d", i, acc, second.Accepted[i].Seq)
		}
	}
	for room, top := range seqs {
		if got, err := st.MaxSeq(ctx, room); err != nil || got != top {
			t.Fatalf("room %d: max seq %d (%v), want %d", room, got, err, top)
		}
		if n, err := st.Count(ctx, room); err != nil || n != top {
			t.Fatalf("room %d: %d messages (%v), want %d", room, n, err, top)
		}
	}
}
