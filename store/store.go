// Package store keeps every chat message forever: MongoDB when nodes share
// a store (the batcher drains Redis into it), the node's own SQLite file
// otherwise. Both implement Store, and the same tests run against both.
package store

import (
	"context"
	"fmt"
	"strings"

	"moim/chatlog"
)

// Store is the durable message log as the hub and the batcher use it.
type Store interface {
	// Insert stores messages the batcher read (a replayed batch is not an
	// error); a different message under a stored (room, seq) is refused
	// and reported as a *ConflictError after the rest is stored.
	Insert(ctx context.Context, msgs []chatlog.Entry) error
	// Tombstone marks deleted messages: body cleared, entry kept so seqs
	// stay gap-free.
	Tombstone(ctx context.Context, room int64, seqs []int64) error
	// Edit replaces edited messages (entries with Edited set): body and
	// edited_at, unless the message was deleted meanwhile.
	Edit(ctx context.Context, edits []chatlog.Entry) error
	// SaveReads raises read positions (never lowering them).
	SaveReads(ctx context.Context, marks []chatlog.ReadMark) error

	// After is oldest first, Before and Search newest first; every entry
	// is an encoded msg event, deleted ones as tombstones.
	After(ctx context.Context, room, seq int64, limit int) ([][]byte, error)
	Before(ctx context.Context, room, seq int64, limit int) ([][]byte, error)
	Search(ctx context.Context, room int64, q string, limit int) ([][]byte, error)
	// MaxSeq is the highest stored seq of room, 0 when none.
	MaxSeq(ctx context.Context, room int64) (int64, error)
	// Count is how many messages room has stored.
	Count(ctx context.Context, room int64) (int64, error)
	// ReadPositions is every member's stored read position in room.
	ReadPositions(ctx context.Context, room int64) (map[int64]int64, error)

	// ReserveSeqs durably raises room's reserved seq high mark to at least
	// atLeast and returns it; 0 only reads it.
	ReserveSeqs(ctx context.Context, room, atLeast int64) (int64, error)
	// AddGap records seqs that may name lost messages; Gaps lists those of
	// room overlapping from..to.
	AddGap(ctx context.Context, g chatlog.Gap) error
	Gaps(ctx context.Context, room, from, to int64) ([]chatlog.Gap, error)
	// FindCID finds the stored message a (user, cid) send became.
	FindCID(ctx context.Context, room, from int64, cid string) (chatlog.Accepted, bool, error)

	// Ping checks the store answers, for /readyz.
	Ping(ctx context.Context) error
	Close() error
}

// Conflict is a message refused because its (room, seq) already names a
// different message: two messages were acknowledged under one seq.
type Conflict struct {
	Room, Seq int64
	// Stored and Refused are the (from, cid) of the stored message and of
	// the refused one; Refused is kept in the store's conflicts table.
	Stored, Refused string
}

// ConflictError lists the messages Insert refused.
type ConflictError struct{ Conflicts []Conflict }

func (e *ConflictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store: %d messages refused: their (room, seq) names a different stored message:", len(e.Conflicts))
	for i, c := range e.Conflicts {
		if i == 5 {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, " room %d seq %d (stored %s, refused %s);", c.Room, c.Seq, c.Stored, c.Refused)
	}
	return b.String()
}

// sender names a message's (from, cid) in a conflict.
func sender(from int64, cid string) string { return fmt.Sprintf("%d/%s", from, cid) }
