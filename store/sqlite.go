package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"moim/chatlog"

	"modernc.org/sqlite" // pure Go: the binary builds with CGO_ENABLED=0
	sqlite3 "modernc.org/sqlite/lib"
)

// Sync is how SQLite makes a commit durable.
type Sync string

const (
	// SyncFull fsyncs the write-ahead log on every commit: a committed
	// message survives the process and the machine losing power.
	SyncFull Sync = "full"
	// SyncNormal leaves the write-ahead log to the OS page cache between
	// checkpoints: a committed message survives the process being killed
	// (kill -9, a crash), not the machine losing power.
	SyncNormal Sync = "normal"
)

// SQLite is the message store of a node that keeps its own: one file in
// the data directory, with its journals beside it, written through one
// connection (by the single-node engine's moves and commits, or by the
// batcher) and read by several.
type SQLite struct {
	// db reads; w writes, through one connection of its own. SQLite drops
	// a connection's page cache whenever another connection has written,
	// so a writer taking whichever pooled connection a reader last used
	// re-read its pages from the file on most commits.
	db, w *sql.DB
	// insert inserts 1, 4, 16 or 64 messages, and byCID finds as many
	// stored messages by their senders' cids, by the number of rows
	// (chunks): every move and commit runs them, so they are prepared
	// once, and n messages take about n/64 of each instead of n (a
	// statement costs the driver and database/sql some 30 allocations,
	// whatever its rows).
	insert, byCID map[int]*sql.Stmt
	// readCID is byCID on the readers, for lookups outside a transaction.
	readCID map[int]*sql.Stmt
	// wmu serializes the writer connection's transactions; mu guards the
	// fields below, and is taken after wmu. top caches each room's highest
	// seq for Commit, which gives seqs out (dropped when a commit fails).
	// moved is when a slice was last moved, and slice the next one.
	wmu, mu sync.Mutex
	top     map[int64]int64
	moved   time.Time
	slice   int
	// jr are the journals new messages wait in (see journal), appended to
	// by turns: cur is the one appended to, and left counts each one's
	// messages not yet in the messages table (see rotate). pending is
	// what they hold and the table does not yet, by slice of rooms and
	// in order, and journaled the same by cid; settling is what a move is
	// writing into the table, out of pending but in journaled until that
	// commits.
	jr        [2]*journal
	cur       int
	left      [2]int
	pending   [moveSlices][]logRow
	settling  []logRow
	journaled map[cidKey]chatlog.Accepted
	// conflicted hears of the journaled messages a move refused (Journal).
	conflicted func([]Conflict)
	// cids spares new messages their lookup by cid (see cidFilter),
	// filled by a scan that begins with the first Commit (fill).
	cids *cidFilter
	fill sync.Once
	// stop ends the checkpointer, done says it ended.
	stop chan struct{}
	done sync.WaitGroup
}

// cidKey names a message by its sender's id for it.
type cidKey struct {
	room, from int64
	cid        string
}

// moveEvery is how often each room's new messages move from the journals
// into the messages table. A commit appends its messages to a journal,
// one write however many rooms it touches; the move then writes each
// room's pages once for all of its messages since the last one, instead
// of once per commit, and each message once: a log table between the two
// had every message written three times (into the log and its room
// index, copied, dropped) and held most of the store's CPU
// (docs/BENCHMARKS.md). The rooms move in moveSlices slices (room mod
// moveSlices), one slice every moveEvery/moveSlices: a second of messages
// moved at once held every ack queued behind it for tens of milliseconds
// at 1,000 messages a second; a 128th of it, about a room's, takes a
// fraction of a millisecond, beside the commits (Tidy). Each move is a
// transaction, whose begin and commit cost more than its rows at a room's
// few messages a second: every 4 s instead of every second took a
// sixteenth off the node's CPU at 1,000 messages a second, its p99 the
// same (docs/BENCHMARKS.md, "Session 40"). Once a journal holds
// journalBusy bytes the rounds take moveEveryBusy, so the journals stay
// well under journalCap at any rate the node keeps up with.
const (
	moveEvery     = 4 * time.Second
	moveEveryBusy = time.Second
	moveSlices    = 128
)

// journalBusy is the journal's size past which rounds of moves take
// moveEveryBusy: 4 s of messages at about 10,000 a second (about 400
// bytes each). Up to there a move writes 4 s of a room's messages at
// once: at 5,000 messages a second over 500 rooms that took a quarter
// off the moves' CPU per message and halved their write calls against
// 1-s rounds (BenchmarkMoves, docs/BENCHMARKS.md "Session 44").
const journalBusy = 16 << 20

// checkpointEvery is how often the checkpointer copies what the
// write-ahead log holds into the database file, beside the writer: in
// the writer, after a commit, a checkpoint of SQLite's default 1,000
// pages took 7–13 ms (two fsyncs and the copy), holding every ack queued
// behind it, twice a second at 1,000 messages a second: that was the
// p99 of the zero-setup node (docs/BENCHMARKS.md). Every 250 ms leaves
// little to copy each time; each checkpoint also syncs the log and then
// the file, and every 25 ms those 80 fsyncs a second took 5–8 % of the
// node's CPU at 1,000 messages a second, every 100 ms a few percent more
// than 250 with the batcher's moves (docs/BENCHMARKS.md, "Session 24").
const checkpointEvery = 250 * time.Millisecond

// autoCheckpoint is the write-ahead log's size in pages past which the
// writer checkpoints itself after a commit. The checkpointer, on another
// connection, cannot rewind the log while the writer keeps appending (it
// never finds the log fully copied: alone, it let the log grow to 1.3 GB,
// docs/BENCHMARKS.md); the writer's own checkpoint, which nothing appends
// beside, can. With the checkpointer ahead of it, that checkpoint has
// little left to copy, and at 10,000 pages (40 MB of log) it comes every
// few seconds at 1,000 messages a second instead of twice a second.
const autoCheckpoint = 10000

// sliceSet is a set of slices of rooms, a bit each: which slices' journaled
// messages a move takes. A read of a room, an edit or a deletion needs its
// room's messages in the table, so it moves its room's slice only.
type sliceSet [moveSlices / 64]uint64

// noSlice and everySlice ask move for no slice's messages and for every
// slice's.
var noSlice, everySlice = sliceSet{}, func() (set sliceSet) {
	for i := range set {
		set[i] = ^uint64(0)
	}
	return set
}()

// roomSlice is the set of room's slice.
func roomSlice(room int64) sliceSet { return noSlice.with(sliceOf(room)) }

// with is set and slice i.
func (set sliceSet) with(i int) sliceSet {
	set[i/64] |= 1 << (i % 64)
	return set
}

func (set sliceSet) has(i int) bool { return set[i/64]&(1<<(i%64)) != 0 }

// journalNames are the journals' files in the data directory; the first
// is the one journal of earlier versions.
var journalNames = [2]string{"messages.journal", "messages.journal.1"}

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS messages (
	room      INTEGER NOT NULL,
	seq       INTEGER NOT NULL,
	from_user INTEGER NOT NULL,
	cid       TEXT    NOT NULL,
	ts        INTEGER NOT NULL,
	body      TEXT    NOT NULL,
	msg       BLOB    NOT NULL,
	deleted   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_cid ON messages (room, from_user, cid);
CREATE TABLE IF NOT EXISTS reads (
	room INTEGER NOT NULL, user INTEGER NOT NULL, seq INTEGER NOT NULL,
	PRIMARY KEY (room, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seq_blocks (room INTEGER PRIMARY KEY, hi INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gaps (
	room INTEGER NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
	PRIMARY KEY (room, from_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conflicts (
	room INTEGER NOT NULL, seq INTEGER NOT NULL, msg BLOB NOT NULL, at INTEGER NOT NULL
);
`

// OpenSQLite opens (creating if needed) messages.db in dir. It is a file
// of its own, beside the accounts and rooms database, so the message
// log's writer never waits for theirs.
func OpenSQLite(dir string, sync Sync) (*SQLite, error) {
	if sync != SyncFull && sync != SyncNormal {
		return nil, fmt.Errorf("store: sync must be %q or %q, not %q", SyncFull, SyncNormal, sync)
	}
	// A 64 MiB page cache keeps every busy room's newest pages in memory
	// (SQLite's default, 2 MiB, re-read them from the file). Checkpoints:
	// see checkpointEvery and autoCheckpoint. Temporary storage is
	// memory: a statement of many rows (the chunks of 64) keeps a
	// statement journal, to undo that statement alone, which past 64 KiB
	// spilled to a temporary file, a write call per page (a third more
	// write calls per message in BenchmarkCommit at batch 128); it holds
	// one statement's pages.
	dsn := "file:" + filepath.Join(dir, "messages.db") +
		"?" + vfsParam + "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + string(sync) + ")&_pragma=cache_size(-65536)&_pragma=temp_store(memory)&_pragma=wal_autocheckpoint(" + strconv.Itoa(autoCheckpoint) + ")&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(sqliteSchema); err != nil {
		_ = w.Close()
		var se *sqlite.Error
		if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY {
			return nil, fmt.Errorf("store: %s is in use by another process (a node already running on this data directory?): %w", filepath.Join(dir, "messages.db"), err)
		}
		return nil, fmt.Errorf("store: create tables: %w", err)
	}
	s := &SQLite{w: w, top: map[int64]int64{}, journaled: map[cidKey]chatlog.Accepted{}, cids: newCIDFilter()}
	// The journals open only now: the schema's statements took the
	// database file's lock (vfsParam), so no other node truncates them.
	var replayed []logRow
	for i, name := range journalNames {
		jr, rows, err := openJournal(filepath.Join(dir, name), sync == SyncFull)
		if err != nil {
			s.closeJournals()
			_ = w.Close()
			return nil, err
		}
		s.jr[i] = jr
		replayed = append(replayed, rows...)
	}
	// What the journals hold goes into the messages table now, so the
	// store starts with nothing pending; some of it may be there already
	// (the node stopped between a move's commit and emptying a journal).
	// So does an earlier version's log table.
	ctx := context.Background()
	err = s.write(ctx, "write the journals into the messages table", func(tx *sql.Tx) error {
		if err := dropOldLog(ctx, tx); err != nil {
			return err
		}
		return replay(ctx, tx, replayed)
	})
	for _, jr := range s.jr {
		if err == nil {
			err = jr.reset()
		}
	}
	if err == nil {
		s.insert, s.byCID, err = prepareChunks(w)
	}
	if err == nil {
		s.db, err = sql.Open("sqlite", dsn)
	}
	if err == nil {
		s.readCID, err = prepareLookups(s.db)
	}
	if err != nil {
		s.closeJournals()
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s.db.SetMaxOpenConns(8)
	s.moved = time.Now()
	s.stop = make(chan struct{})
	s.done.Add(1)
	go s.checkpoints()
	return s, nil
}

// dropOldLog moves what an earlier version's log table holds (it stood
// between the journal and the messages table) into the messages table,
// and drops it.
func dropOldLog(ctx context.Context, tx *sql.Tx) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'log'`).Scan(&n); err != nil || n == 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO messages (room, seq, from_user, cid, ts, body, msg)
		SELECT room, seq, from_user, cid, ts, body, msg FROM log WHERE true ORDER BY room, seq ON CONFLICT DO NOTHING`); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DROP TABLE log`)
	return err
}

func (s *SQLite) closeJournals() error {
	var errs []error
	for _, jr := range s.jr {
		if jr != nil {
			errs = append(errs, jr.close())
		}
	}
	return errors.Join(errs...)
}

// checkpoints copies the write-ahead log into the database file every
// checkpointEvery until Close, on a reader connection: a passive
// checkpoint waits for no one and holds up neither the writer nor the
// readers. A failed one is retried at the next tick; the writer's own
// checkpoint (autoCheckpoint) still bounds the log.
func (s *SQLite) checkpoints() {
	defer s.done.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		_, _ = s.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// fillCIDs reads the stored keys into the filter on a goroutine of its
// own, again a second later if it failed (until then every key is looked
// up), until Close. Only the single-node engine's commits use the filter,
// so a node whose batcher writes this store pays neither for the scan nor
// for keeping its keys.
func (s *SQLite) fillCIDs() {
	s.mu.Lock() // no Insert is halfway (it holds mu throughout)
	s.cids.start()
	s.mu.Unlock()
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		for s.cids.fill(s.stop, s.db) != nil {
			select {
			case <-s.stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

// Close closes the database.
func (s *SQLite) Close() error {
	close(s.stop)
	s.done.Wait()
	// A node stopped cleanly leaves its journals empty.
	settleErr := s.settle(context.Background(), everySlice)
	for _, st := range s.insert {
		_ = st.Close()
	}
	for _, st := range s.byCID {
		_ = st.Close()
	}
	for _, st := range s.readCID {
		_ = st.Close()
	}
	_ = s.db.Close()
	return errors.Join(settleErr, s.closeJournals(), s.w.Close())
}

// Ping checks the database file answers.
func (s *SQLite) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

const insertMessage = `INSERT INTO messages (room, seq, from_user, cid, ts, body, msg) VALUES (?, ?, ?, ?, ?, ?, ?)`

// insertIgnoring starts the insert of many rows that skips the ones
// breaking a constraint, for insertRows to judge one by one. Unlike ON
// CONFLICT DO NOTHING, which leaves NOT NULL's ABORT in place, OR IGNORE
// lets no row abort the statement, so SQLite keeps no statement journal
// for it: a copy of every page the statement changes, a sixth of a
// batch insert's CPU in BenchmarkInsert.
const insertIgnoring = `INSERT OR IGNORE INTO messages (room, seq, from_user, cid, ts, body, msg) VALUES (?, ?, ?, ?, ?, ?, ?)`

// Commit commits a batch: each new draft gets its room's next seq, a
// retried (user, cid) gets its original seq and ts, deletions tombstone,
// read positions rise. Nothing of a failed batch is kept. A batch of new
// messages only goes to the journal (appendDrafts), from which Tidy
// moves them into the messages table; any other is one transaction,
// which first moves the journaled messages of the slices of the rooms it
// edits or deletes in (those find their messages in the table).
func (s *SQLite) Commit(ctx context.Context, b *chatlog.Batch) error {
	s.fill.Do(s.fillCIDs)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if len(b.Edits)+len(b.Deletes)+len(b.Reads) == 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.appendDrafts(ctx, b)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	set := noSlice
	for _, e := range b.Edits {
		set = set.with(sliceOf(e.Room))
	}
	for _, d := range b.Deletes {
		set = set.with(sliceOf(d.Room))
	}
	if err := s.move(ctx, set, b); err != nil {
		return fmt.Errorf("store: commit %d messages, %d edits, %d deletions, %d read positions: %w", len(b.Drafts), len(b.Edits), len(b.Deletes), len(b.Reads), err)
	}
	return nil
}

// Tidy moves the next slice of rooms' messages from the journals into
// the messages table once its turn has come. The single-node engine
// calls it from a goroutine of its own: while the move's transaction
// runs, Commit goes on appending new messages to a journal, so a send
// waits for the journal only, never for a move.
func (s *SQLite) Tidy(ctx context.Context) error {
	s.mu.Lock()
	due := s.due()
	s.mu.Unlock()
	if !due {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.due() { // a settle moved everything meanwhile
		return nil
	}
	slice := s.slice
	set := noSlice.with(slice)
	if s.jr[s.cur].size >= journalCap {
		// Moves have fallen behind by megabytes: this one takes every
		// slice's messages (new ones go on into the journal meanwhile,
		// see move).
		set = everySlice
	}
	err := s.move(ctx, set, nil)
	// A slice whose move failed waits for its next turn, its messages in
	// their journal (see rotate); the others go on moving meanwhile.
	s.moved = time.Now()
	s.slice = (s.slice + 1) % moveSlices
	if err != nil {
		return fmt.Errorf("store: move the journaled messages of slice %d: %w", slice, err)
	}
	if s.slice == 0 {
		return s.rotate()
	}
	return nil
}

// journalCap is the journal's size past which a move takes every slice's
// messages, so that the journals empty: four times journalBusy, which
// 1-s rounds reach only far past what the node keeps up with.
const journalCap = 64 << 20

// due reports that a slice's turn to move has come and some message
// waits to move.
func (s *SQLite) due() bool {
	every := moveEvery
	if s.jr[s.cur].size >= journalBusy {
		every = moveEveryBusy
	}
	return time.Since(s.moved) >= every/moveSlices && s.left != [2]int{}
}

// rotate, at the end of each round of moves (every slice moved once),
// empties the journal not appended to and appends to it from now on, once
// none of its messages waits to move: it took none during the round, and
// each slice's move in the round took all of that slice's, so unless a
// move failed that is every round. A journal thus holds two rounds of
// messages at most.
func (s *SQLite) rotate() error {
	other := 1 - s.cur
	if s.left[other] > 0 {
		return nil
	}
	if s.jr[other].size > 0 {
		if err := s.jr[other].reset(); err != nil {
			return err
		}
	}
	s.cur = other
	return nil
}

// move writes the journaled messages of the slices in set into the
// messages table and commits b (nil: nothing more), in one transaction.
// It is called with wmu and mu held; when b has no new messages to give
// seqs to, mu is released while the transaction runs, and commits go on
// into the journal meanwhile.
func (s *SQLite) move(ctx context.Context, set sliceSet, b *chatlog.Batch) error {
	var rows []logRow
	for i := range s.pending {
		if set.has(i) {
			rows = append(rows, s.pending[i]...)
			s.pending[i] = nil
		}
	}
	if len(rows) == 0 && b == nil {
		return nil
	}
	// Each room's rows in seq order, so its pages are written once.
	slices.SortStableFunc(rows, func(x, y logRow) int { return cmp.Compare(x.room, y.room) })
	s.settling = rows
	hold := b != nil && len(b.Drafts) > 0 // assign reads and gives seqs under mu
	if !hold {
		s.mu.Unlock()
	}
	c := commit{given: map[int64]int64{}, added: map[cidKey]chatlog.Accepted{}}
	err := s.moveTx(ctx, rows, b, &c)
	if !hold {
		s.mu.Lock()
	}
	s.settling = nil
	if err != nil {
		for room := range c.given {
			delete(s.top, room)
		}
		s.putBack(rows)
		return err
	}
	for room, seq := range c.given {
		s.top[room] = seq
	}
	for k := range c.added {
		s.cids.add(k) // written into the table by this transaction
	}
	for _, r := range rows {
		k := cidKey{r.room, r.from, r.cid}
		s.cids.add(k) // before the key leaves the store's memory
		delete(s.journaled, k)
		s.left[r.file]--
	}
	if s.left == [2]int{} {
		// Every journaled message is in the table.
		for _, jr := range s.jr {
			if jr.size > 0 {
				if err := jr.reset(); err != nil {
					return err
				}
			}
		}
	}
	if len(c.refused) > 0 && s.conflicted != nil {
		s.conflicted(c.refused)
	}
	return nil
}

// moveTx inserts rows into the messages table and commits b (may be nil)
// in one transaction.
func (s *SQLite) moveTx(ctx context.Context, rows []logRow, b *chatlog.Batch, c *commit) error {
	// Once begun, the transaction runs to its end without ctx's deadline:
	// a context that can end costs a goroutine per statement in the
	// driver (to interrupt it) and one per transaction in database/sql,
	// several per message, for statements on a local file whose only
	// wait, for the lock, busy_timeout bounds; the one writer is never
	// held by a reader.
	ctx = context.WithoutCancel(ctx)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	c.refused, err = s.insertRows(ctx, tx, rows)
	if err == nil && b != nil {
		err = s.apply(ctx, tx, b, c)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		_ = tx.Rollback()
	}
	return err
}

// putBack returns the rows of a failed move to the front of their
// slices' pending rows.
func (s *SQLite) putBack(rows []logRow) {
	var back [moveSlices][]logRow
	for _, r := range rows {
		i := sliceOf(r.room)
		back[i] = append(back[i], r)
	}
	for i := range back {
		if len(back[i]) > 0 {
			s.pending[i] = append(back[i], s.pending[i]...)
		}
	}
}

// apply commits b in tx: its new messages straight into the table (its
// transaction writes their pages anyway), its edits, deletions and read
// positions.
func (s *SQLite) apply(ctx context.Context, tx *sql.Tx, b *chatlog.Batch, c *commit) error {
	fresh, err := s.assign(ctx, tx, b, c)
	if err != nil {
		return err
	}
	refused, err := s.insertRows(ctx, tx, draftRows(b, fresh))
	if err != nil {
		return err
	}
	c.refused = append(c.refused, refused...)
	for i, e := range b.Edits {
		n, err := editRow(ctx, tx, e.Room, e.Seq, e.Body, e.Msg)
		if err != nil {
			return err
		}
		b.Edits[i].Done = n == 1
	}
	for i, del := range b.Deletes {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET deleted = 1 WHERE room = ? AND seq = ? AND deleted = 0`, del.Room, del.Seq)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		b.Deletes[i].Done = n == 1
	}
	return saveReads(ctx, tx, b.Reads)
}

// appendDrafts commits b's new messages to the journal: each gets its seq
// as in a transaction, and the journal's one write is what makes them
// durable.
func (s *SQLite) appendDrafts(ctx context.Context, b *chatlog.Batch) error {
	c := commit{given: map[int64]int64{}, added: map[cidKey]chatlog.Accepted{}}
	fresh, err := s.assign(ctx, nil, b, &c)
	if err != nil {
		return fmt.Errorf("store: commit %d messages: %w", len(b.Drafts), err)
	}
	if err := s.journal(draftRows(b, fresh)); err != nil {
		return err
	}
	for room, seq := range c.given {
		s.top[room] = seq
	}
	for k, acc := range c.added {
		s.journaled[k] = acc
	}
	return nil
}

// journal appends rows to the journal and to what waits to move.
func (s *SQLite) journal(rows []logRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := s.jr[s.cur].append(rows); err != nil {
		return err
	}
	for _, r := range rows {
		r.file = s.cur
		i := sliceOf(r.room)
		s.pending[i] = append(s.pending[i], r)
	}
	s.left[s.cur] += len(rows)
	return nil
}

// settle moves the journaled messages of the slices in set into the
// messages table, so a read of their rooms sees every acknowledged
// message.
func (s *SQLite) settle(ctx context.Context, set sliceSet) error {
	s.mu.Lock()
	waiting := s.left != [2]int{} // a move's messages count until it commits
	s.mu.Unlock()
	if !waiting {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.move(ctx, set, nil); err != nil {
		return fmt.Errorf("store: move the journaled messages: %w", err)
	}
	return nil
}

// replay writes what the journals held at start into the messages table,
// leaving what is there already.
func replay(ctx context.Context, tx *sql.Tx, rows []logRow) error {
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, insertMessage+` ON CONFLICT DO NOTHING`, r.room, r.seq, r.from, r.cid, r.ts, r.body, r.msg); err != nil {
			return err
		}
	}
	return nil
}

// sliceOf is the slice of rooms room belongs to.
func sliceOf(room int64) int { return int(uint64(room) % moveSlices) }

// commit is what one transaction gave out, applied to the SQLite's maps
// only once it commits.
type commit struct {
	given   map[int64]int64
	added   map[cidKey]chatlog.Accepted
	refused []Conflict
}

// chunks are the row counts of the prepared insert and byCID statements,
// largest first; a batch is cut into them greedily.
var chunks = [...]int{64, 16, 4, 1}

// prepareChunks prepares the insert into the messages table and the
// lookup by cid for every chunk size.
func prepareChunks(w *sql.DB) (insert, byCID map[int]*sql.Stmt, err error) {
	insert = map[int]*sql.Stmt{}
	for _, n := range chunks {
		if insert[n], err = w.Prepare(insertIgnoring + strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?)`, n-1)); err != nil {
			return nil, nil, err
		}
	}
	byCID, err = prepareLookups(w)
	return insert, byCID, err
}

// prepareLookups prepares the lookup by cid for every chunk size.
func prepareLookups(db *sql.DB) (map[int]*sql.Stmt, error) {
	byCID := map[int]*sql.Stmt{}
	for _, n := range chunks {
		// The few keys drive the join, each found through messages_cid.
		var err error
		if byCID[n], err = db.Prepare(`WITH k(room, from_user, cid) AS (VALUES (?, ?, ?)` + strings.Repeat(`, (?, ?, ?)`, n-1) + `)
			SELECT m.room, m.from_user, m.cid, m.seq, m.ts FROM k
			JOIN messages m ON m.room = k.room AND m.from_user = k.from_user AND m.cid = k.cid`); err != nil {
			return nil, err
		}
	}
	return byCID, nil
}

// forChunks calls f with consecutive pieces of 0..n-1, each of a chunk
// size, the largest that fits.
func forChunks(n int, f func(from, size int) error) error {
	for from := 0; from < n; {
		size := chunks[len(chunks)-1]
		for _, c := range chunks {
			if c <= n-from {
				size = c
				break
			}
		}
		if err := f(from, size); err != nil {
			return err
		}
		from += size
	}
	return nil
}

// assign gives each draft of b its room's next seq, or, for a (room,
// from, cid) committed before or earlier in b, its original seq and ts,
// and returns the indexes of the new ones in b's order: one lookup of
// every cid neither known in memory nor ruled out by the filter, in tx
// (nil: outside any transaction).
func (s *SQLite) assign(ctx context.Context, tx *sql.Tx, b *chatlog.Batch, c *commit) ([]int, error) {
	b.Accepted = make([]chatlog.Accepted, len(b.Drafts))
	b.Encoded = make([][]byte, len(b.Drafts))
	if len(b.Drafts) == 0 {
		return nil, nil
	}
	// The keys neither the journals nor this batch name yet and the
	// filter does not rule out; the first of two drafts with one key is
	// looked up, the second is its retry.
	var unknown []cidKey
	asked := map[cidKey]bool{}
	for _, d := range b.Drafts {
		k := cidKey{d.Room, d.From, d.CID}
		if _, ok := s.journaled[k]; !ok && !asked[k] && s.cids.mayHold(k) {
			asked[k] = true
			unknown = append(unknown, k)
		}
	}
	stored, err := s.storedCIDs(ctx, tx, unknown)
	if err != nil {
		return nil, err
	}
	var fresh []int // indexes of the new drafts, in b's order
	for i, d := range b.Drafts {
		k := cidKey{d.Room, d.From, d.CID}
		if acc, ok := s.journaled[k]; ok {
			b.Accepted[i] = chatlog.Accepted{Seq: acc.Seq, TS: acc.TS, Dup: true}
			continue
		}
		if acc, ok := stored[k]; ok {
			b.Accepted[i] = acc
			continue
		}
		if acc, ok := c.added[k]; ok {
			b.Accepted[i] = chatlog.Accepted{Seq: acc.Seq, TS: acc.TS, Dup: true}
			continue
		}
		top, ok := c.given[d.Room]
		if !ok {
			if top, ok = s.top[d.Room]; !ok {
				if err := s.queryRow(ctx, tx, maxSeq, d.Room).Scan(&top); err != nil {
					return nil, err
				}
				// A failed commit forgets its rooms' tops; the journals
				// may hold seqs the table does not.
				for _, r := range slices.Concat(s.pending[sliceOf(d.Room)], s.settling) {
					if r.room == d.Room {
						top = max(top, r.seq)
					}
				}
			}
		}
		c.given[d.Room] = top + 1
		acc := chatlog.Accepted{Seq: top + 1, TS: d.TS}
		c.added[k] = acc
		b.Accepted[i] = acc
		b.Encoded[i] = d.Encode(top + 1)
		fresh = append(fresh, i)
	}
	return fresh, nil
}

// queryRow runs a one-row query in tx, or on a reader connection when tx
// is nil: the writer's may be in a move's transaction, and what that
// writes is in memory until it commits (journaled, pending, settling).
func (s *SQLite) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if tx == nil {
		return s.db.QueryRowContext(ctx, query, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// draftRows are the rows of b's drafts at fresh.
func draftRows(b *chatlog.Batch, fresh []int) []logRow {
	rows := make([]logRow, len(fresh))
	for j, i := range fresh {
		d := b.Drafts[i]
		rows[j] = logRow{room: d.Room, seq: b.Accepted[i].Seq, from: d.From, ts: d.TS, cid: d.CID, body: d.Body, msg: b.Encoded[i]}
	}
	return rows
}

// insertRows inserts rows into the messages table, a chunk of rows per
// statement, and returns those refused (see refuse): the batcher's
// journaled messages may be replays, or clash after Redis lost its data.
func (s *SQLite) insertRows(ctx context.Context, tx *sql.Tx, rows []logRow) ([]Conflict, error) {
	var conflicts []Conflict
	args := make([]any, 0, 7*min(len(rows), chunks[0]))
	err := forChunks(len(rows), func(from, size int) error {
		args = args[:0]
		chunk := rows[from : from+size]
		for _, r := range chunk {
			args = append(args, r.room, r.seq, r.from, r.cid, r.ts, r.body, r.msg)
		}
		res, err := tx.StmtContext(ctx, s.insert[size]).ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == int64(size) {
			return nil
		}
		for _, r := range chunk {
			// Each row again, alone: the ones stored now are stored.
			res, err := tx.ExecContext(ctx, insertMessage+` ON CONFLICT DO NOTHING`, r.room, r.seq, r.from, r.cid, r.ts, r.body, r.msg)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				continue
			}
			c, err := refuse(ctx, tx, r)
			if err != nil {
				return err
			}
			if c != nil {
				conflicts = append(conflicts, *c)
			}
		}
		return nil
	})
	return conflicts, err
}

// storedCIDs finds which of keys name a message in the messages table,
// with its seq and ts (Dup set), in tx (nil: on a reader connection, see
// queryRow).
func (s *SQLite) storedCIDs(ctx context.Context, tx *sql.Tx, keys []cidKey) (map[cidKey]chatlog.Accepted, error) {
	found := map[cidKey]chatlog.Accepted{}
	args := make([]any, 0, 3*min(len(keys), chunks[0]))
	err := forChunks(len(keys), func(from, size int) error {
		args = args[:0]
		for _, k := range keys[from : from+size] {
			args = append(args, k.room, k.from, k.cid)
		}
		st := s.readCID[size]
		if tx != nil {
			st = tx.StmtContext(ctx, s.byCID[size])
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k cidKey
			acc := chatlog.Accepted{Dup: true}
			if err := rows.Scan(&k.room, &k.from, &k.cid, &acc.Seq, &acc.TS); err != nil {
				return err
			}
			found[k] = acc
		}
		return rows.Err()
	})
	return found, err
}

// maxSeq is a room's highest seq in the messages table.
const maxSeq = `SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room = ?`

func saveReads(ctx context.Context, tx *sql.Tx, marks []chatlog.ReadMark) error {
	for _, r := range marks {
		if _, err := tx.ExecContext(ctx, `INSERT INTO reads (room, user, seq) VALUES (?, ?, ?)
			ON CONFLICT (room, user) DO UPDATE SET seq = MAX(seq, excluded.seq)`, r.Room, r.User, r.Seq); err != nil {
			return err
		}
	}
	return nil
}

// write runs f in one transaction under the writer lock.
func (s *SQLite) write(ctx context.Context, what string, f func(tx *sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

// Insert stores messages the batcher read, in one transaction of its
// own, as a move does (insertRows). A (room, seq) or (room, from, cid)
// already stored is a replay when it is the same message; otherwise the
// message is refused, kept in the conflicts table and reported.
func (s *SQLite) Insert(ctx context.Context, entries []chatlog.Entry) error {
	rows := make([]logRow, len(entries))
	for i, e := range entries {
		rows[i] = entryRow(e)
	}
	var refused []Conflict
	err := s.write(ctx, fmt.Sprintf("insert %d messages", len(entries)), func(tx *sql.Tx) error {
		for _, r := range rows { // under mu, as the filter's start wants
			s.cids.add(cidKey{r.room, r.from, r.cid}) // a false "maybe" if this fails
		}
		var err error
		refused, err = s.insertRows(ctx, tx, rows)
		return err
	})
	if err != nil {
		return err
	}
	if len(refused) > 0 {
		return &ConflictError{Conflicts: refused}
	}
	return nil
}

// Journal stores messages the batcher read as Insert does, through the
// journal instead of a transaction of their own: they are durable when it
// returns, as a commit with synchronous=NORMAL is (fsynced with
// SyncFull), and move into the messages table with the moves, which the
// caller runs (Tidy) beside it, a slice of rooms at a time. A batch of a
// second's messages inserted at once took tens of milliseconds of a core
// and was the Redis path's p99 (docs/BENCHMARKS.md); a move takes a
// 128th of it. A conflict (see Insert) is found by the move and reported
// to the handler SetConflictHandler set.
func (s *SQLite) Journal(ctx context.Context, entries []chatlog.Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: journal %d messages: %w", len(entries), err)
	}
	rows := make([]logRow, len(entries))
	for i, e := range entries {
		rows[i] = entryRow(e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.journal(rows)
}

// SetConflictHandler makes the moves report the journaled messages they
// refuse (Journal) to f, after their transaction commits.
func (s *SQLite) SetConflictHandler(f func([]Conflict)) {
	s.mu.Lock()
	s.conflicted = f
	s.mu.Unlock()
}

// entryRow is the row of a message the batcher read.
func entryRow(e chatlog.Entry) logRow {
	m := e.Message
	return logRow{room: m.Room, seq: m.Seq, from: m.From, ts: m.TS, cid: m.CID, body: m.Body, msg: e.Raw}
}

// refuse is the verdict on r, which its insert did not store: nil when
// the same message is stored (a replay); else a conflict, kept in the
// conflicts table.
func refuse(ctx context.Context, tx *sql.Tx, r logRow) (*Conflict, error) {
	var from int64
	var cid string
	err := tx.QueryRowContext(ctx, `SELECT from_user, cid FROM messages WHERE room = ? AND seq = ?`, r.room, r.seq).Scan(&from, &cid)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err == nil && from == r.from && cid == r.cid {
		return nil, nil // a replayed batch
	}
	if err != nil {
		// The seq is free but (from, cid) is stored under another seq:
		// the message was acknowledged twice.
		from, cid = r.from, r.cid
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO conflicts (room, seq, msg, at) VALUES (?, ?, ?, ?)`,
		r.room, r.seq, r.msg, time.Now().UnixMilli()); err != nil {
		return nil, err
	}
	return &Conflict{Room: r.room, Seq: r.seq, Stored: sender(from, cid), Refused: sender(r.from, r.cid)}, nil
}

// editRow replaces a message that is not deleted and reports how many
// rows changed.
func editRow(ctx context.Context, tx *sql.Tx, room, seq int64, body string, msg []byte) (int64, error) {
	res, err := tx.ExecContext(ctx, `UPDATE messages SET body = ?, msg = ? WHERE room = ? AND seq = ? AND deleted = 0`, body, msg, room, seq)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Edit replaces edited messages the batcher read.
func (s *SQLite) Edit(ctx context.Context, edits []chatlog.Entry) error {
	set := noSlice
	for _, e := range edits {
		set = set.with(sliceOf(e.Room))
	}
	if err := s.settle(ctx, set); err != nil { // they find their messages in the table
		return err
	}
	return s.write(ctx, fmt.Sprintf("edit %d messages", len(edits)), func(tx *sql.Tx) error {
		for _, e := range edits {
			if _, err := editRow(ctx, tx, e.Room, e.Seq, e.Message.Body, e.Raw); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *SQLite) Tombstone(ctx context.Context, room int64, seqs []int64) error {
	if err := s.settle(ctx, roomSlice(room)); err != nil { // they find their messages in the table
		return err
	}
	return s.write(ctx, fmt.Sprintf("tombstone %d messages of room %d", len(seqs), room), func(tx *sql.Tx) error {
		for _, seq := range seqs {
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET deleted = 1 WHERE room = ? AND seq = ?`, room, seq); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *SQLite) SaveReads(ctx context.Context, marks []chatlog.ReadMark) error {
	return s.write(ctx, fmt.Sprintf("save %d read positions", len(marks)), func(tx *sql.Tx) error {
		return saveReads(ctx, tx, marks)
	})
}

func (s *SQLite) ReadPositions(ctx context.Context, room int64) (map[int64]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT user, seq FROM reads WHERE room = ?`, room)
	if err != nil {
		return nil, fmt.Errorf("store: read positions of room %d: %w", room, err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var u, seq int64
		if err := rows.Scan(&u, &seq); err != nil {
			return nil, fmt.Errorf("store: read positions of room %d: %w", room, err)
		}
		out[u] = seq
	}
	return out, rows.Err()
}

func (s *SQLite) After(ctx context.Context, room, after int64, limit int) ([][]byte, error) {
	return s.messages(ctx, room, `SELECT msg, deleted FROM messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?`, after, limit)
}

func (s *SQLite) Before(ctx context.Context, room, before int64, limit int) ([][]byte, error) {
	if before <= 0 {
		before = 1 << 62
	}
	return s.messages(ctx, room, `SELECT msg, deleted FROM messages WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, before, limit)
}

// likeEscaper quotes LIKE's wildcards so q is always plain text.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Search finds messages of room whose body contains q (case-insensitively
// for ASCII letters, as SQLite's LIKE does), newest first.
func (s *SQLite) Search(ctx context.Context, room int64, q string, limit int) ([][]byte, error) {
	return s.messages(ctx, room, `SELECT msg, deleted FROM messages WHERE room = ? AND deleted = 0 AND body LIKE ? ESCAPE '\' ORDER BY seq DESC LIMIT ?`,
		"%"+likeEscaper.Replace(q)+"%", limit)
}

// messages runs query, whose first argument is room, the rest args.
func (s *SQLite) messages(ctx context.Context, room int64, query string, args ...any) ([][]byte, error) {
	if err := s.settle(ctx, roomSlice(room)); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, query, append([]any{room}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("store: find: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var msg []byte
		var deleted bool
		if err := rows.Scan(&msg, &deleted); err != nil {
			return nil, fmt.Errorf("store: read: %w", err)
		}
		if deleted {
			msg = chatlog.Tombstone(msg)
		}
		out = append(out, msg)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read: %w", err)
	}
	return out, nil
}

func (s *SQLite) MaxSeq(ctx context.Context, room int64) (int64, error) {
	var n int64
	if err := s.settle(ctx, roomSlice(room)); err != nil {
		return 0, err
	}
	if err := s.db.QueryRowContext(ctx, maxSeq, room).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: highest seq of room %d: %w", room, err)
	}
	return n, nil
}

func (s *SQLite) Count(ctx context.Context, room int64) (int64, error) {
	var n int64
	if err := s.settle(ctx, roomSlice(room)); err != nil {
		return 0, err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE room = ?`, room).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count room %d: %w", room, err)
	}
	return n, nil
}

func (s *SQLite) ReserveSeqs(ctx context.Context, room, atLeast int64) (int64, error) {
	var hi int64
	err := s.write(ctx, fmt.Sprintf("reserve seqs of room %d", room), func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO seq_blocks (room, hi) VALUES (?, ?)
			ON CONFLICT (room) DO UPDATE SET hi = MAX(hi, excluded.hi) RETURNING hi`, room, atLeast).Scan(&hi)
	})
	return hi, err
}

func (s *SQLite) AddGap(ctx context.Context, g chatlog.Gap) error {
	return s.write(ctx, fmt.Sprintf("record gap of room %d", g.Room), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO gaps (room, from_seq, to_seq) VALUES (?, ?, ?)
			ON CONFLICT (room, from_seq) DO UPDATE SET to_seq = MAX(to_seq, excluded.to_seq)`, g.Room, g.From, g.To)
		return err
	})
}

func (s *SQLite) Gaps(ctx context.Context, room, from, to int64) ([]chatlog.Gap, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT from_seq, to_seq FROM gaps WHERE room = ? AND from_seq <= ? AND to_seq >= ? ORDER BY from_seq`, room, to, from)
	if err != nil {
		return nil, fmt.Errorf("store: gaps of room %d: %w", room, err)
	}
	defer rows.Close()
	var out []chatlog.Gap
	for rows.Next() {
		g := chatlog.Gap{Room: room}
		if err := rows.Scan(&g.From, &g.To); err != nil {
			return nil, fmt.Errorf("store: gaps of room %d: %w", room, err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

func (s *SQLite) FindCID(ctx context.Context, room, from int64, cid string) (chatlog.Accepted, bool, error) {
	var acc chatlog.Accepted
	if err := s.settle(ctx, roomSlice(room)); err != nil {
		return acc, false, err
	}
	err := s.db.QueryRowContext(ctx, `SELECT seq, ts FROM messages WHERE room = ? AND from_user = ? AND cid = ?`, room, from, cid).Scan(&acc.Seq, &acc.TS)
	if errors.Is(err, sql.ErrNoRows) {
		return acc, false, nil
	}
	if err != nil {
		return acc, false, fmt.Errorf("store: find cid in room %d: %w", room, err)
	}
	return acc, true, nil
}
