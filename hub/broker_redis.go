package hub

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"moim/rooms"
)

// The Lua scripts, one round trip each.
var (
	//go:embed send.lua
	sendLua string
	//go:embed read.lua
	readLua string
	//go:embed presence.lua
	presenceLua string
	//go:embed delete.lua
	deleteLua string

	sendScript     = redis.NewScript(sendLua)
	markReadScript = redis.NewScript(readLua)
	presenceScript = redis.NewScript(presenceLua)
	deleteScript   = redis.NewScript(deleteLua)
)

// Broker is the hub's Redis side: the send script, the room streams and
// the pub/sub subscription that delivers rooms this node has members in.
type Broker struct {
	rdb  redis.UniversalClient
	keys rooms.Keys
	// RecentLen caps each room's recent stream (approximately).
	recentLen int
	dedupeTTL time.Duration
	subs      *subscriptions
	reqs      chan *sendReq // sends waiting for a pipeline (pipeline_redis.go)
	roundTrip prometheus.Observer
}

func newBroker(rdb redis.UniversalClient, keys rooms.Keys, recentLen int, node string) *Broker {
	return &Broker{rdb: rdb, keys: keys, recentLen: recentLen, dedupeTTL: 24 * time.Hour, subs: newSubscriptions(rdb, keys, node)}
}

// Draft is a message before Redis gives it a seq: its JSON is split
// around the seq so the script can splice it in without re-encoding.
type Draft struct {
	Room int64
	From int64  // 0 for server-side producers
	CID  string // client id; server-side producers use their idempotency key
	Head []byte
	Tail []byte
	TS   int64
}

// Accepted is what the script decided for a draft.
type Accepted struct {
	Seq int64
	TS  int64
	Dup bool // the same (user, cid) was accepted before; Seq is the original
}

var (
	errNotMember = errors.New("hub: not a member of the room")
	errNoSeq     = errors.New("hub: room seq counter missing")
)

// Accept runs the send script once: one Redis round trip per message, shared
// with whatever other sends are in flight.
func (b *Broker) Accept(ctx context.Context, d *Draft) (Accepted, error) {
	keys := []string{b.keys.Members(d.Room), b.keys.Seq(d.Room), b.keys.Dedupe(d.Room, d.From, d.CID), b.keys.Recent(d.Room), b.keys.Persist(b.keys.Shard(d.Room))}
	res, err := b.runSend(ctx, keys,
		d.From, d.Head, d.Tail, b.recentLen, int(b.dedupeTTL.Seconds()), b.keys.Channel(d.Room), d.Room, d.TS, b.subs.publishCommand())
	if err != nil {
		return Accepted{}, fmt.Errorf("hub: send script for room %d: %w", d.Room, err)
	}
	switch res[0] {
	case "not_member":
		return Accepted{}, errNotMember
	case "noseq":
		return Accepted{}, errNoSeq
	}
	seq, err1 := strconv.ParseInt(res[1], 10, 64)
	ts, err2 := strconv.ParseInt(res[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Accepted{}, fmt.Errorf("hub: send script reply %q: %w", res, err)
	}
	return Accepted{Seq: seq, TS: ts, Dup: res[0] == "dup"}, nil
}

// RestoreSeq sets a missing seq counter to the highest seq known, from the
// recent stream and from storedMax (the message store), so a room's seqs
// keep increasing even after Redis lost its data. SETNX keeps a counter
// another node restored first.
func (b *Broker) RestoreSeq(ctx context.Context, room int64, storedMax int64) error {
	last, err := b.rdb.XRevRangeN(ctx, b.keys.Recent(room), "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("hub: read recent tail of room %d: %w", room, err)
	}
	high := storedMax
	if len(last) == 1 {
		high = max(high, streamSeq(last[0].ID))
	}
	if err := b.rdb.SetNX(ctx, b.keys.Seq(room), high, 0).Err(); err != nil {
		return fmt.Errorf("hub: restore seq of room %d: %w", room, err)
	}
	return nil
}

// Recent returns up to limit messages of room after seq, oldest first,
// from the recent stream. complete reports that nothing older than the
// stream holds is missing from the answer: the stream reaches back to
// after, or the room's seq counter (never below a seq it gave out) is at
// most after. Otherwise the caller asks the store for the rest.
func (b *Broker) Recent(ctx context.Context, room, after int64, limit int) (msgs [][]byte, complete bool, err error) {
	key := b.keys.Recent(room)
	pipe := b.rdb.Pipeline()
	top := pipe.Get(ctx, b.keys.Seq(room))
	headCmd := pipe.XRangeN(ctx, key, "-", "+", 1)
	_, _ = pipe.Exec(ctx)
	head, err := headCmd.Result()
	if err != nil {
		return nil, false, fmt.Errorf("hub: read recent head of room %d: %w", room, err)
	}
	seq, err := top.Int64()
	switch {
	case err == nil && seq <= after:
		// Nothing newer exists: a sync of an idle room costs the store nothing.
		return nil, true, nil
	case err != nil && err != redis.Nil:
		return nil, false, fmt.Errorf("hub: read seq of room %d: %w", room, err)
	case len(head) == 0:
		return nil, false, nil
	}
	first := streamSeq(head[0].ID)
	entries, err := b.rdb.XRangeN(ctx, key, strconv.FormatInt(max(after+1, first), 10)+"-0", "+", int64(limit)).Result()
	if err != nil {
		return nil, false, fmt.Errorf("hub: read recent of room %d after %d: %w", room, after, err)
	}
	msgs = make([][]byte, 0, len(entries))
	for _, e := range entries {
		if m, ok := e.Values["m"].(string); ok {
			msgs = append(msgs, []byte(m))
		}
	}
	return msgs, first <= after+1, nil
}

// RecentBefore returns up to limit messages of room before seq (0: the
// newest), newest first, from the recent stream.
func (b *Broker) RecentBefore(ctx context.Context, room, before int64, limit int) ([][]byte, error) {
	end := "+"
	if before > 0 {
		if before == 1 {
			return nil, nil
		}
		end = strconv.FormatInt(before-1, 10) + "-0"
	}
	entries, err := b.rdb.XRevRangeN(ctx, b.keys.Recent(room), end, "-", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("hub: read recent of room %d before %d: %w", room, before, err)
	}
	msgs := make([][]byte, 0, len(entries))
	for _, e := range entries {
		if m, ok := e.Values["m"].(string); ok {
			msgs = append(msgs, []byte(m))
		}
	}
	return msgs, nil
}

// IsMember checks the Redis membership mirror (the REST paths use it; a
// connection uses its node's view).
func (b *Broker) IsMember(ctx context.Context, room, user int64) (bool, error) {
	ok, err := b.rdb.SIsMember(ctx, b.keys.Members(room), user).Result()
	if err != nil {
		return false, fmt.Errorf("hub: membership of %d in %d: %w", user, room, err)
	}
	return ok, nil
}

func streamSeq(id string) int64 {
	s, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// Publish sends an ephemeral event (typing, read, deleted) to a room's
// subscribers without storing it.
func (b *Broker) Publish(ctx context.Context, room int64, payload []byte) error {
	if err := b.subs.publish(ctx, b.rdb, b.keys.Channel(room), payload).Err(); err != nil {
		return fmt.Errorf("hub: publish to room %d: %w", room, err)
	}
	return nil
}

// Message reads one message of a room from the recent stream; nil when
// the stream no longer (or never) held it.
func (b *Broker) Message(ctx context.Context, room, seq int64) ([]byte, error) {
	id := strconv.FormatInt(seq, 10) + "-0"
	entries, err := b.rdb.XRange(ctx, b.keys.Recent(room), id, id).Result()
	if err != nil {
		return nil, fmt.Errorf("hub: read message %d of room %d: %w", seq, room, err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	m, _ := entries[0].Values["m"].(string)
	return []byte(m), nil
}

// Delete tombstones a message; false means it was already deleted.
func (b *Broker) Delete(ctx context.Context, room, seq, by int64) (bool, error) {
	ev := encode(deletedEvent{Type: "deleted", Room: room, Seq: seq, By: by})
	n, err := deleteScript.Run(ctx, b.rdb, []string{b.keys.Deleted(room), b.keys.Persist(b.keys.Shard(room))},
		room, seq, by, b.keys.Channel(room), ev, b.subs.publishCommand()).Int()
	if err != nil {
		return false, fmt.Errorf("hub: delete message %d of room %d: %w", seq, room, err)
	}
	return n == 1, nil
}

// deletedIn returns which seqs of a room are deleted.
func (b *Broker) deletedIn(ctx context.Context, room int64) (map[int64]bool, error) {
	ms, err := b.rdb.SMembers(ctx, b.keys.Deleted(room)).Result()
	if err != nil {
		return nil, fmt.Errorf("hub: read deleted of room %d: %w", room, err)
	}
	out := make(map[int64]bool, len(ms))
	for _, m := range ms {
		if n, err := strconv.ParseInt(m, 10, 64); err == nil {
			out[n] = true
		}
	}
	return out, nil
}

// PublishAll sends one ephemeral event to several rooms in one pipeline.
func (b *Broker) PublishAll(ctx context.Context, rooms []int64, payload []byte) error {
	if len(rooms) == 0 {
		return nil
	}
	pipe := b.rdb.Pipeline()
	for _, r := range rooms {
		b.subs.publish(ctx, pipe, b.keys.Channel(r), payload)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("hub: publish to %d rooms: %w", len(rooms), err)
	}
	return nil
}

// MarkRead raises a member's read position (never lowers it) and reports
// whether it moved.
func (b *Broker) MarkRead(ctx context.Context, room, user, seq int64) (bool, error) {
	moved, err := markReadScript.Run(ctx, b.rdb, []string{b.keys.Reads(room)}, user, seq).Int()
	if err != nil {
		return false, fmt.Errorf("hub: mark read in room %d: %w", room, err)
	}
	return moved == 1, nil
}

// ReadPositions is every member's read position in room (absent: 0).
func (b *Broker) ReadPositions(ctx context.Context, room int64) (map[int64]int64, error) {
	all, err := b.rdb.HGetAll(ctx, b.keys.Reads(room)).Result()
	if err != nil {
		return nil, fmt.Errorf("hub: read positions in room %d: %w", room, err)
	}
	out := make(map[int64]int64, len(all))
	for user, seq := range all {
		u, err1 := strconv.ParseInt(user, 10, 64)
		s, err2 := strconv.ParseInt(seq, 10, 64)
		if err1 == nil && err2 == nil {
			out[u] = s
		}
	}
	return out, nil
}

// roomOf parses a room channel name back to its id.
func roomOf(channel string) (int64, bool) {
	s, ok := strings.CutSuffix(channel, ":ch")
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(s, ':')
	id, err := strconv.ParseInt(s[i+1:], 10, 64)
	return id, err == nil
}
