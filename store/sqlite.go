package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
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
// the data directory, with its journal beside it, written through one
// connection (by the single-node engine's group commit and its moves, or
// by the batcher) and read by several.
type SQLite struct {
	// db reads; w writes, through one connection of its own. SQLite drops
	// a connection's page cache whenever another connection has written,
	// so a writer taking whichever pooled connection a reader last used
	// re-read its pages from the file on most commits.
	db, w *sql.DB
	// accept inserts 1, 4, 16 or 64 new messages into the log, and byCID
	// finds as many stored messages by their senders' cids, by the number
	// of rows (chunks): the group commit runs them in every transaction,
	// so they are prepared once, and a commit of n messages runs about
	// n/64 of each instead of n (a statement costs the driver and
	// database/sql some 30 allocations, whatever its rows).
	accept, byCID map[int]*sql.Stmt
	// readCID is byCID on the readers, for lookups outside a transaction.
	readCID map[int]*sql.Stmt
	// copyRoom, dropLog and logEnd are moveLog's statements.
	copyRoom, dropLog, logEnd *sql.Stmt
	// wmu serializes the writer connection's transactions; mu guards the
	// maps below and the journal, and is taken after wmu. top caches each
	// room's highest seq for Commit, which gives seqs out (dropped when a
	// commit fails). tail is what the log table holds and the messages
	// table does not yet, by cid; moved is when a slice was last moved,
	// and slice the next one.
	wmu, mu sync.Mutex
	top     map[int64]int64
	tail    logTail
	moved   time.Time
	slice   int
	// rounds is where the log's rows stand: see moveLog.
	rounds logRounds
	// jr is what new messages wait for (see journal); pending is what it
	// holds and the log table does not yet, in order, and journaled the
	// same by cid; settling is what a move (Tidy) is writing into the
	// log, out of pending but in journaled until that commits.
	jr        *journal
	pending   []logRow
	settling  []logRow
	journaled map[cidKey]chatlog.Accepted
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

// moveEvery is how often each room's messages move from the log table
// into the messages table. A commit appends its messages to the end of
// the log and to the log's small room index (two seconds of entries at
// most, see moveLog), a few pages however many rooms it touches; the
// move then writes each room's pages once for all of its messages since
// the last one, instead of once per commit. The rooms move in
// moveSlices slices (room mod moveSlices), one slice every
// moveEvery/moveSlices: a second of messages moved at once held every
// ack queued behind it for tens of milliseconds at 1,000 messages a
// second (docs/BENCHMARKS.md); a 128th of it, about a room's, takes half
// a millisecond (a 32nd: 1.5 ms), beside the commits (Tidy).
const (
	moveEvery  = time.Second
	moveSlices = 128
)

// checkpointEvery is how often the checkpointer copies what the
// write-ahead log holds into the database file, beside the writer: in
// the writer, after a commit, a checkpoint of SQLite's default 1,000
// pages took 7–13 ms (two fsyncs and the copy), holding every ack queued
// behind it, twice a second at 1,000 messages a second: that was the
// p99 of the zero-setup node (docs/BENCHMARKS.md). Every 25 ms leaves
// little to copy each time.
const checkpointEvery = 25 * time.Millisecond

// autoCheckpoint is the write-ahead log's size in pages past which the
// writer checkpoints itself after a commit. The checkpointer, on another
// connection, cannot rewind the log while the writer keeps appending (it
// never finds the log fully copied: alone, it let the log grow to 1.3 GB,
// docs/BENCHMARKS.md); the writer's own checkpoint, which nothing appends
// beside, can. With the checkpointer ahead of it, that checkpoint has
// little left to copy, and at 10,000 pages (40 MB of log) it comes every
// few seconds at 1,000 messages a second instead of twice a second.
const autoCheckpoint = 10000

// allSlices asks moveLog to move the whole log.
const allSlices = -1

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
CREATE TABLE IF NOT EXISTS log (
	room      INTEGER NOT NULL,
	seq       INTEGER NOT NULL,
	from_user INTEGER NOT NULL,
	cid       TEXT    NOT NULL,
	ts        INTEGER NOT NULL,
	body      TEXT    NOT NULL,
	msg       BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS log_room ON log (room, seq);
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
	// see checkpointEvery and autoCheckpoint. Temporary storage is memory: a statement of many rows (the group
	// commit's chunks of 64) keeps a statement journal, to undo that
	// statement alone, which past 64 KiB spilled to a temporary file, a
	// write call per page (a third more write calls per message in
	// BenchmarkCommit at batch 128); it holds one statement's pages.
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
	// The journal opens only now: the schema's statements took the
	// database file's lock (vfsParam), so no other node truncates it.
	jr, replayed, err := openJournal(filepath.Join(dir, "messages.journal"), sync == SyncFull)
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	s.jr = jr
	// What the last run left in the log moves now, so the tail starts
	// empty, as the map of it does; then what the journal held, which
	// may be committed already (the node stopped between the commit and
	// emptying the journal).
	err = s.write(context.Background(), "move the log", func(tx *sql.Tx) error {
		if _, err := s.moveLog(context.Background(), tx, allSlices, nil); err != nil {
			return err
		}
		return replay(context.Background(), tx, replayed)
	})
	if err == nil {
		err = jr.reset()
	}
	if err == nil {
		s.accept, s.byCID, err = prepareChunks(w)
	}
	if err == nil {
		s.copyRoom, err = w.Prepare(`INSERT INTO messages (room, seq, from_user, cid, ts, body, msg)
			SELECT room, seq, from_user, cid, ts, body, msg FROM log WHERE room = ? AND seq >= ? ORDER BY seq`)
	}
	if err == nil {
		s.dropLog, err = w.Prepare(`DELETE FROM log WHERE rowid <= ?`)
	}
	if err == nil {
		s.logEnd, err = w.Prepare(`SELECT COALESCE(MAX(rowid), 0) FROM log`)
	}
	if err == nil {
		s.db, err = sql.Open("sqlite", dsn)
	}
	if err == nil {
		s.readCID, err = prepareLookups(s.db)
	}
	if err != nil {
		_ = jr.close()
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

// moveLog moves the messages of one slice of rooms (room mod moveSlices;
// allSlices: every room), rooms (sliceRooms), from the log table into
// the messages table. A
// slice's rooms are copied, each in seq order so its pages are written
// once, and stay in the log: the log is emptied from its start, a round
// (every slice copied once) behind, each slice's move dropping a
// moveSlices-th of the rows the round before last appended (logRounds).
// Deleting each room's rows where they lie dirtied most log pages once
// per room on them; dropping the oldest rows dirties each page once.
// Until dropped, a copied row is in both tables: reads of the log skip
// the seqs the messages table holds (logNew). The statements are
// prepared once; one naming a slice's rooms was compiled again on every
// move, most of what a move of a few rooms cost (docs/BENCHMARKS.md).
func (s *SQLite) moveLog(ctx context.Context, tx *sql.Tx, slice int, rooms map[int64]int64) (logRounds, error) {
	if slice == allSlices {
		if _, err := tx.ExecContext(ctx, moveAll); err != nil {
			return logRounds{}, err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM log`)
		return logRounds{}, err
	}
	cp := tx.StmtContext(ctx, s.copyRoom)
	for room, from := range rooms {
		if _, err := cp.ExecContext(ctx, room, from); err != nil {
			return logRounds{}, err
		}
	}
	r := s.rounds
	if slice == 0 {
		// The round that ended copied every row up to its mark.
		end, err := s.end(ctx, tx)
		if err != nil {
			return logRounds{}, err
		}
		r = logRounds{from: r.to, to: r.mark, mark: end, dropped: r.dropped}
	}
	upTo := r.from + (r.to-r.from)*int64(slice+1)/moveSlices
	if upTo > r.dropped {
		if _, err := tx.StmtContext(ctx, s.dropLog).ExecContext(ctx, upTo); err != nil {
			return logRounds{}, err
		}
		r.dropped = upTo
		// A log emptied numbers its next row 1 again: marks from
		// before would name rows not yet copied.
		end, err := s.end(ctx, tx)
		if err != nil {
			return logRounds{}, err
		}
		if end == 0 {
			r = logRounds{}
		}
	}
	return r, nil
}

// end is the log's last rowid, 0 when it is empty.
func (s *SQLite) end(ctx context.Context, tx *sql.Tx) (int64, error) {
	var n int64
	err := tx.StmtContext(ctx, s.logEnd).QueryRowContext(ctx).Scan(&n)
	return n, err
}

// logRounds is where the log's rows stand, by rowid: every row up to
// dropped is gone; those up to mark, the log's end when the current
// round of moves began, are copied by the round's end; the round drops
// from+1..to, the rows the round before copied, a slice's share at a time.
type logRounds struct{ from, to, mark, dropped int64 }

// moveAll copies the log's rows not yet copied (all but the newest rows
// of a room may be in both tables, see moveLog).
const moveAll = `INSERT INTO messages (room, seq, from_user, cid, ts, body, msg)
	SELECT room, seq, from_user, cid, ts, body, msg FROM log
	WHERE seq > (SELECT COALESCE(MAX(m.seq), 0) FROM messages m WHERE m.room = log.room) ORDER BY room, seq`

// logNew keeps, of a room's log rows (the room is ?1), those not yet
// copied into the messages table.
const logNew = `seq > (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room = ?1)`

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
	// A node stopped cleanly leaves its journal empty.
	settleErr := s.settle(context.Background())
	for _, st := range s.accept {
		_ = st.Close()
	}
	for _, st := range s.byCID {
		_ = st.Close()
	}
	for _, st := range s.readCID {
		_ = st.Close()
	}
	for _, st := range []*sql.Stmt{s.copyRoom, s.dropLog, s.logEnd} {
		_ = st.Close()
	}
	_ = s.db.Close()
	return errors.Join(settleErr, s.jr.close(), s.w.Close())
}

// Ping checks the database file answers.
func (s *SQLite) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

const insertMessage = `INSERT INTO messages (room, seq, from_user, cid, ts, body, msg) VALUES (?, ?, ?, ?, ?, ?, ?)`

// Commit commits a batch: each new draft gets its room's next seq, a
// retried (user, cid) gets its original seq and ts, deletions tombstone,
// read positions rise. Nothing of a failed batch is kept. A batch of new
// messages only goes to the journal (appendDrafts); any other is one
// transaction, which first writes the journal's messages into the log.
// New messages go to the end of the log table, moved into the messages
// table (each room every moveEvery, and all of them before an edit or
// deletion, which find messages there) by Tidy, or by a later commit
// when Tidy is late twice over.
func (s *SQLite) Commit(ctx context.Context, b *chatlog.Batch) error {
	s.fill.Do(s.fillCIDs)
	return s.run(ctx, b, 2*moveEvery/moveSlices)
}

// Tidy moves the next slice of rooms out of the log once its turn has
// come, with what the journal holds. The single-node engine calls it from
// a goroutine of its own: while the move's transaction runs, Commit goes
// on appending new messages to the journal (their cids looked up on a
// reader connection), so a send no longer waits for a move, only for the
// journal. A move that rode on a commit held that commit's acks for as
// long as it took. Commit moves only when Tidy is late twice over.
func (s *SQLite) Tidy(ctx context.Context) error {
	s.mu.Lock()
	due := time.Since(s.moved) >= moveEvery/moveSlices && !s.quiet()
	s.mu.Unlock()
	if !due {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if time.Since(s.moved) < moveEvery/moveSlices { // a commit moved meanwhile
		s.mu.Unlock()
		return nil
	}
	rows, slice := s.pending, s.slice
	rooms := s.sliceRooms(slice, rows)
	s.pending, s.settling = nil, rows
	// A journal grown past journalCap is emptied by this move: no new
	// message goes in while it runs.
	hold := s.jr.size >= journalCap
	if !hold {
		s.mu.Unlock()
	}
	r, err := s.moveTx(ctx, rows, slice, rooms)
	if !hold {
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	s.settling = nil
	if err != nil {
		s.pending = append(rows, s.pending...)
		return fmt.Errorf("store: move rooms of slice %d and %d journaled messages: %w", slice, len(rows), err)
	}
	s.rounds = r
	s.forgetSlice(slice)
	for _, row := range rows {
		k := cidKey{row.room, row.from, row.cid}
		if sliceOf(row.room) == slice {
			s.cids.add(k) // copied into the messages table
		} else {
			s.tail.put(k, chatlog.Accepted{Seq: row.seq, TS: row.ts})
		}
		delete(s.journaled, k)
	}
	s.slice = (slice + 1) % moveSlices
	s.moved = time.Now()
	if len(s.pending) == 0 {
		return s.jr.reset()
	}
	return nil
}

// journalCap is the journal's size past which a move holds new messages
// until it has emptied the journal; below it, the journal is emptied by
// the first move during which no message arrived.
const journalCap = 16 << 20

// quiet reports that there is nothing to move: nothing in the journal or
// the log's tail, and the log table dropped to empty.
func (s *SQLite) quiet() bool {
	return len(s.pending) == 0 && s.rounds == (logRounds{}) && s.tail.empty()
}

// moveTx writes rows (the journal's) into the log and moves slice, in one
// transaction, and returns where the log's rows stand after it.
func (s *SQLite) moveTx(ctx context.Context, rows []logRow, slice int, rooms map[int64]int64) (logRounds, error) {
	tx, err := s.w.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return logRounds{}, err
	}
	r, err := func() (logRounds, error) {
		if err := s.insertLog(ctx, tx, rows); err != nil {
			return logRounds{}, err
		}
		return s.moveLog(ctx, tx, slice, rooms)
	}()
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		_ = tx.Rollback()
	}
	return r, err
}

// run is Commit: a batch of new messages only goes to the journal
// (journals); any other is one transaction, moving a slice first once
// moveAfter has passed since the last move.
func (s *SQLite) run(ctx context.Context, b *chatlog.Batch, moveAfter time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	s.mu.Lock()
	if s.journals(b, moveAfter) {
		defer s.mu.Unlock()
		return s.appendDrafts(context.WithoutCancel(ctx), b)
	}
	s.mu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Once begun, the transaction runs to its end without ctx's deadline:
	// a context that can end costs a goroutine per statement in the
	// driver (to interrupt it) and one per transaction in database/sql,
	// several per message, for statements on a local file whose only
	// wait, for the lock, busy_timeout bounds; the one writer is never
	// held by a reader.
	ctx = context.WithoutCancel(ctx)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin commit: %w", err)
	}
	c := commit{given: map[int64]int64{}, added: map[cidKey]chatlog.Accepted{}, moved: noSlice}
	err = s.commit(ctx, tx, b, &c, moveAfter)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		_ = tx.Rollback()
		for room := range c.given {
			delete(s.top, room)
		}
		return fmt.Errorf("store: commit %d messages, %d edits, %d deletions, %d read positions: %w", len(b.Drafts), len(b.Edits), len(b.Deletes), len(b.Reads), err)
	}
	for room, seq := range c.given {
		s.top[room] = seq
	}
	if c.moved != noSlice {
		s.rounds = c.rounds
	}
	switch c.moved {
	case noSlice:
	case allSlices:
		for i := range s.tail {
			s.forgetSlice(i)
		}
	default:
		s.forgetSlice(c.moved)
		s.slice = (c.moved + 1) % moveSlices
		s.moved = time.Now()
	}
	for k, acc := range c.added {
		s.tail.put(k, acc)
	}
	if c.settled {
		s.pending = nil
		s.cids.addAll(s.journaled)
		clear(s.journaled)
		if err := s.jr.reset(); err != nil {
			return fmt.Errorf("store: commit: %w", err)
		}
	}
	return nil
}

// maxPending is the most messages the journal holds before a commit
// writes them into the log table: moves, which take them along, come
// every few milliseconds while the node is busy, so this only bounds a
// writer that never gets to move.
const maxPending = 512

// journals reports whether b can be committed by the journal alone: new
// messages only, no move due, and the journal not full.
func (s *SQLite) journals(b *chatlog.Batch, moveAfter time.Duration) bool {
	return len(b.Drafts) > 0 && len(b.Edits)+len(b.Deletes)+len(b.Reads) == 0 &&
		time.Since(s.moved) < moveAfter && len(s.pending) < maxPending
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
	rows := draftRows(b, fresh)
	if len(rows) > 0 {
		if err := s.jr.append(rows); err != nil {
			return err
		}
	}
	for room, seq := range c.given {
		s.top[room] = seq
	}
	for k, acc := range c.added {
		s.journaled[k] = acc
	}
	s.pending = append(s.pending, rows...)
	return nil
}

// settle writes what the journal holds into the log table, so a read of
// the database sees every acknowledged message.
func (s *SQLite) settle(ctx context.Context) error {
	s.mu.Lock()
	n := len(s.pending) + len(s.settling) // a move's rows are not readable until it commits
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	if err := s.run(ctx, &chatlog.Batch{}, time.Duration(math.MaxInt64)); err != nil {
		return fmt.Errorf("store: write the journal into the log: %w", err)
	}
	return nil
}

// replay writes what the journal held at start into the messages table,
// leaving what is there already.
func replay(ctx context.Context, tx *sql.Tx, rows []logRow) error {
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, insertMessage+` ON CONFLICT DO NOTHING`, r.room, r.seq, r.from, r.cid, r.ts, r.body, r.msg); err != nil {
			return err
		}
	}
	return nil
}

// logTail is what the log holds and the messages table does not yet, by
// cid, a map per slice of rooms, so a move reads and forgets only its
// slice's.
type logTail [moveSlices]map[cidKey]chatlog.Accepted

// sliceOf is the slice of rooms room belongs to.
func sliceOf(room int64) int { return int(uint64(room) % moveSlices) }

func (t *logTail) get(k cidKey) (chatlog.Accepted, bool) {
	acc, ok := t[sliceOf(k.room)][k]
	return acc, ok
}

func (t *logTail) put(k cidKey, acc chatlog.Accepted) {
	i := sliceOf(k.room)
	if t[i] == nil {
		t[i] = map[cidKey]chatlog.Accepted{}
	}
	t[i][k] = acc
}

func (t *logTail) empty() bool {
	for _, m := range t {
		if len(m) > 0 {
			return false
		}
	}
	return true
}

// commit is what one Commit changed, applied to the SQLite's maps only
// once the transaction commits.
type commit struct {
	given map[int64]int64
	added map[cidKey]chatlog.Accepted
	// moved is the slice of rooms this commit moved, allSlices, or
	// noSlice; rounds is where it left the log.
	moved  int
	rounds logRounds
	// settled says the journal's messages went into the log too.
	settled bool
}

// noSlice says a commit moved nothing.
const noSlice = -2

func (s *SQLite) commit(ctx context.Context, tx *sql.Tx, b *chatlog.Batch, c *commit, moveAfter time.Duration) error {
	// The journal's messages go into the log first, where a move finds
	// them as it finds the tail's.
	if len(s.pending) > 0 {
		if err := s.insertLog(ctx, tx, s.pending); err != nil {
			return err
		}
		c.settled = true
	}
	switch {
	case (len(b.Edits) > 0 || len(b.Deletes) > 0) && (!s.tail.empty() || c.settled):
		c.moved = allSlices
	case time.Since(s.moved) >= moveAfter:
		c.moved = s.slice
	}
	if c.moved != noSlice {
		var rooms map[int64]int64
		if c.moved != allSlices {
			rooms = s.sliceRooms(c.moved, s.pending)
		}
		var err error
		if c.rounds, err = s.moveLog(ctx, tx, c.moved, rooms); err != nil {
			return err
		}
	}
	// Of them, those the move did not copy join the tail.
	for _, r := range s.pending {
		if c.moved != allSlices && sliceOf(r.room) != c.moved {
			c.added[cidKey{r.room, r.from, r.cid}] = chatlog.Accepted{Seq: r.seq, TS: r.ts}
		}
	}
	if err := s.acceptDrafts(ctx, tx, b, c); err != nil {
		return err
	}
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

// sliceRooms gives each room of slice with messages not yet copied out
// of the log, in the tail or among rows, the lowest seq of them.
func (s *SQLite) sliceRooms(slice int, rows []logRow) map[int64]int64 {
	rooms := map[int64]int64{}
	for k, acc := range s.tail[slice] {
		if from, ok := rooms[k.room]; !ok || acc.Seq < from {
			rooms[k.room] = acc.Seq
		}
	}
	for _, r := range rows {
		if from, ok := rooms[r.room]; sliceOf(r.room) == slice && (!ok || r.seq < from) {
			rooms[r.room] = r.seq
		}
	}
	return rooms
}

// chunks are the row counts of the prepared accept and byCID statements,
// largest first; a batch is cut into them greedily.
var chunks = [...]int{64, 16, 4, 1}

// prepareChunks prepares the insert into the log and the lookup by cid
// for every chunk size.
func prepareChunks(w *sql.DB) (accept, byCID map[int]*sql.Stmt, err error) {
	accept = map[int]*sql.Stmt{}
	for _, n := range chunks {
		if accept[n], err = w.Prepare(`INSERT INTO log (room, seq, from_user, cid, ts, body, msg) VALUES (?, ?, ?, ?, ?, ?, ?)` +
			strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?)`, n-1)); err != nil {
			return nil, nil, err
		}
	}
	byCID, err = prepareLookups(w)
	return accept, byCID, err
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

// acceptDrafts gives b's drafts their seqs (assign) and appends the new
// ones to the log, a chunk of rows per statement.
func (s *SQLite) acceptDrafts(ctx context.Context, tx *sql.Tx, b *chatlog.Batch, c *commit) error {
	fresh, err := s.assign(ctx, tx, b, c)
	if err != nil {
		return err
	}
	return s.insertLog(ctx, tx, draftRows(b, fresh))
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
	// The keys neither the log's and journal's maps nor this batch name
	// yet and the filter does not rule out; the first of two drafts with
	// one key is looked up, the second is its retry.
	var unknown []cidKey
	asked := map[cidKey]bool{}
	for _, d := range b.Drafts {
		k := cidKey{d.Room, d.From, d.CID}
		if _, ok := s.known(k); !ok && !asked[k] && s.cids.mayHold(k) {
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
		if acc, ok := s.known(k); ok {
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
				// A failed commit forgets its rooms' tops; the journal
				// may hold seqs the tables do not.
				for _, r := range slices.Concat(s.pending, s.settling) {
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

// forgetSlice drops the tail's keys of a slice its move copied into the
// messages table, adding them to the filter first: a key leaves the
// store's memory only once the filter has it.
func (s *SQLite) forgetSlice(i int) {
	s.cids.addAll(s.tail[i])
	clear(s.tail[i])
}

// known finds a message by cid in the log table's tail or the journal.
func (s *SQLite) known(k cidKey) (chatlog.Accepted, bool) {
	if acc, ok := s.tail.get(k); ok {
		return acc, true
	}
	acc, ok := s.journaled[k]
	return acc, ok
}

// queryRow runs a one-row query in tx, or on a reader connection when tx
// is nil: the writer's may be in a move's transaction, and what that
// writes is in memory until it commits (known, pending, settling).
func (s *SQLite) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if tx == nil {
		return s.db.QueryRowContext(ctx, query, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// draftRows are the log rows of b's drafts at fresh.
func draftRows(b *chatlog.Batch, fresh []int) []logRow {
	rows := make([]logRow, len(fresh))
	for j, i := range fresh {
		d := b.Drafts[i]
		rows[j] = logRow{room: d.Room, seq: b.Accepted[i].Seq, from: d.From, ts: d.TS, cid: d.CID, body: d.Body, msg: b.Encoded[i]}
	}
	return rows
}

// insertLog appends rows to the log table, a chunk of rows per statement.
func (s *SQLite) insertLog(ctx context.Context, tx *sql.Tx, rows []logRow) error {
	args := make([]any, 0, 7*min(len(rows), chunks[0]))
	return forChunks(len(rows), func(from, size int) error {
		args = args[:0]
		for _, r := range rows[from : from+size] {
			args = append(args, r.room, r.seq, r.from, r.cid, r.ts, r.body, r.msg)
		}
		_, err := tx.StmtContext(ctx, s.accept[size]).ExecContext(ctx, args...)
		return err
	})
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

// maxSeq is a room's highest seq in either table.
const maxSeq = `SELECT COALESCE(MAX(seq), 0) FROM (
	SELECT MAX(seq) AS seq FROM messages WHERE room = ?1
	UNION ALL SELECT MAX(seq) FROM log WHERE room = ?1)`

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

// insertYield is how many rows Insert writes between yields of its
// processor.
const insertYield = 32

// Insert stores messages the batcher read. A (room, seq) or (room, from,
// cid) already stored is a replay when it is the same message; otherwise
// the message is refused, kept in the conflicts table and reported.
func (s *SQLite) Insert(ctx context.Context, entries []chatlog.Entry) error {
	var conflicts []Conflict
	err := s.write(ctx, fmt.Sprintf("insert %d messages", len(entries)), func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, insertMessage+` ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, e := range entries {
			if i%insertYield == insertYield-1 {
				// A batch of a second's messages is tens of milliseconds
				// of CPU; deliveries waiting for a processor go first.
				runtime.Gosched()
			}
			m := e.Message
			s.cids.add(cidKey{m.Room, m.From, m.CID}) // a false "maybe" if this fails
			res, err := ins.ExecContext(ctx, m.Room, m.Seq, m.From, m.CID, m.TS, m.Body, e.Raw)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				continue
			}
			var from int64
			var cid string
			err = tx.QueryRowContext(ctx, `SELECT from_user, cid FROM messages WHERE room = ? AND seq = ?`, m.Room, m.Seq).Scan(&from, &cid)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if err == nil && from == m.From && cid == m.CID {
				continue // a replayed batch
			}
			if err != nil {
				// The seq is free but (from, cid) is stored under another
				// seq: the message was acknowledged twice.
				from, cid = m.From, m.CID
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO conflicts (room, seq, msg, at) VALUES (?, ?, ?, ?)`,
				m.Room, m.Seq, e.Raw, time.Now().UnixMilli()); err != nil {
				return err
			}
			conflicts = append(conflicts, Conflict{Room: m.Room, Seq: m.Seq, Stored: sender(from, cid), Refused: sender(m.From, m.CID)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		return &ConflictError{Conflicts: conflicts}
	}
	return nil
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
	return s.messages(ctx, `SELECT msg, deleted FROM (
		SELECT * FROM (SELECT seq, msg, deleted FROM messages WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3)
		UNION ALL SELECT * FROM (SELECT seq, msg, 0 FROM log WHERE room = ?1 AND seq > ?2 AND `+logNew+` ORDER BY seq LIMIT ?3)
	) ORDER BY seq LIMIT ?3`, room, after, limit)
}

func (s *SQLite) Before(ctx context.Context, room, before int64, limit int) ([][]byte, error) {
	if before <= 0 {
		before = 1 << 62
	}
	return s.messages(ctx, `SELECT msg, deleted FROM (
		SELECT * FROM (SELECT seq, msg, deleted FROM messages WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3)
		UNION ALL SELECT * FROM (SELECT seq, msg, 0 FROM log WHERE room = ?1 AND seq < ?2 AND `+logNew+` ORDER BY seq DESC LIMIT ?3)
	) ORDER BY seq DESC LIMIT ?3`, room, before, limit)
}

// likeEscaper quotes LIKE's wildcards so q is always plain text.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Search finds messages of room whose body contains q (case-insensitively
// for ASCII letters, as SQLite's LIKE does), newest first.
func (s *SQLite) Search(ctx context.Context, room int64, q string, limit int) ([][]byte, error) {
	return s.messages(ctx, `SELECT msg, deleted FROM (
		SELECT * FROM (SELECT seq, msg, deleted FROM messages WHERE room = ?1 AND deleted = 0 AND body LIKE ?2 ESCAPE '\' ORDER BY seq DESC LIMIT ?3)
		UNION ALL SELECT * FROM (SELECT seq, msg, 0 FROM log WHERE room = ?1 AND body LIKE ?2 ESCAPE '\' AND `+logNew+` ORDER BY seq DESC LIMIT ?3)
	) ORDER BY seq DESC LIMIT ?3`, room, "%"+likeEscaper.Replace(q)+"%", limit)
}

func (s *SQLite) messages(ctx context.Context, query string, args ...any) ([][]byte, error) {
	if err := s.settle(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
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
	if err := s.settle(ctx); err != nil {
		return 0, err
	}
	if err := s.db.QueryRowContext(ctx, maxSeq, room).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: highest seq of room %d: %w", room, err)
	}
	return n, nil
}

func (s *SQLite) Count(ctx context.Context, room int64) (int64, error) {
	var n int64
	if err := s.settle(ctx); err != nil {
		return 0, err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM messages WHERE room = ?1) + (SELECT COUNT(*) FROM log WHERE room = ?1 AND `+logNew+`)`, room).Scan(&n); err != nil {
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
	if err := s.settle(ctx); err != nil {
		return acc, false, err
	}
	err := s.db.QueryRowContext(ctx, `SELECT seq, ts FROM messages WHERE room = ?1 AND from_user = ?2 AND cid = ?3
		UNION ALL SELECT seq, ts FROM log WHERE room = ?1 AND from_user = ?2 AND cid = ?3 LIMIT 1`, room, from, cid).Scan(&acc.Seq, &acc.TS)
	if errors.Is(err, sql.ErrNoRows) {
		return acc, false, nil
	}
	if err != nil {
		return acc, false, fmt.Errorf("store: find cid in room %d: %w", room, err)
	}
	return acc, true, nil
}
