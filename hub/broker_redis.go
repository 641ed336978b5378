package hub

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"moim/chatlog"
)

// The Lua scripts, one round trip each.
var (
	//go:embed send.lua
	sendLua string
	//go:embed mark_read.lua
	markReadLua string
	//go:embed presence.lua
	presenceLua string
	//go:embed delete.lua
	deleteLua string
	//go:embed seqhi.lua
	seqHiLua string
	//go:embed edit.lua
	editLua string
	//go:embed restore.lua
	restoreLua string
	//go:embed instance.lua
	instanceLua string
	//go:embed reseed.lua
	reseedLua string

	sendScript     = redis.NewScript(sendLua)
	markReadScript = redis.NewScript(markReadLua)
	presenceScript = redis.NewScript(presenceLua)
	deleteScript   = redis.NewScript(deleteLua)
	seqHiScript    = redis.NewScript(seqHiLua)
	editScript     = redis.NewScript(editLua)
	restoreScript  = redis.NewScript(restoreLua)
	instanceScript = redis.NewScript(instanceLua)
	reseedScript   = redis.NewScript(reseedLua)
)

// SeqStore is what the Redis broker needs from the message store so that a
// seq never names two messages, even after Redis loses acknowledged data.
type SeqStore interface {
	// MaxSeq is the highest stored seq of room, 0 when none.
	MaxSeq(ctx context.Context, room int64) (int64, error)
	// ReserveSeqs durably raises room's reserved seq high mark to at
	// least atLeast and returns it (0 only reads it).
	ReserveSeqs(ctx context.Context, room, atLeast int64) (int64, error)
	// AddGap records seqs that may name lost messages.
	AddGap(ctx context.Context, g chatlog.Gap) error
	// After is up to limit stored messages of room past seq after, as
	// JSON, in seq order.
	After(ctx context.Context, room, after int64, limit int) ([][]byte, error)
	// FindCID finds the stored message a (user, cid) send became.
	FindCID(ctx context.Context, room, from int64, cid string) (chatlog.Accepted, bool, error)
	// ReadPositions is every member's stored read position in room.
	ReadPositions(ctx context.Context, room int64) (map[int64]int64, error)
}

// RedisConfig tunes a RedisBroker. Zero fields take the defaults in brackets.
type RedisConfig struct {
	// Node names this node on the probe channels and in presence.
	Node string
	// RecentLen caps each room's recent stream, which serves sync [1000].
	RecentLen int
	// SeqBlock is how many seqs one durable reservation covers [10000]:
	// one store write per block per room, made in the background once half
	// of the block is used, so a room keeps taking messages through a store
	// outage of up to half a block. After Redis loses data the room
	// continues past the reserved block, and the unstored part of it is
	// reported as a gap.
	SeqBlock int64
	// DedupeTTL is how long Redis at least remembers a (user, cid) send
	// [10m]: long enough for a client's ordinary retries (a timeout, a
	// reconnect, an outage of minutes), short enough that the cids fit in
	// memory at thousands of messages a second (a day's would be gigabytes
	// at 1,000 a second). Sends are kept in one hash per room and window
	// (chatlog.Keys.CIDs), the current and the previous one looked in, so
	// a cid is remembered for one to two windows. A send marked as a
	// resend whose cid Redis no longer knows is looked up in the message
	// store, so it gets its original seq however late it comes.
	DedupeTTL time.Duration
	// Linger is how often, at most, the send pipeline's round trips start
	// while sends come fast (pipeline_redis.go) [none: each round trip
	// takes what is queued]. The server's default is 2ms, a small part of
	// the p99 at the rates where it applies.
	Linger time.Duration
	// CheckWindow is how long after Redis lost a room's data whole a send
	// whose cid Redis does not know is first looked up in the store [1h]:
	// a client retrying a message acknowledged before the loss gets its
	// original seq. (When Redis came back with older data, the cids it
	// lost are written back instead: reseedCIDs.)
	CheckWindow time.Duration
}

// RedisBroker keeps the chat log's live state in Redis and delivers room
// events over pub/sub, so any number of nodes share it.
type RedisBroker struct {
	rdb       redis.UniversalClient
	keys      chatlog.Keys
	cfg       RedisConfig
	seqs      SeqStore
	subs      *subscriptions
	reqs      chan *sendReq // sends waiting for a pipeline (pipeline_redis.go)
	roundTrip prometheus.Observer
	gaps      prometheus.Counter
	restores  prometheus.Counter
	log       *slog.Logger
	// sending counts send script calls between runSend's start and end.
	sending atomic.Int64
	// rate counts sends since a moment, to judge lingering.
	rate struct {
		sync.Mutex
		since time.Time
		sent  int
	}
	// lingering is set while sends come fast enough for the pipeline's
	// round trips to wait for more (pipeLoop).
	lingering atomic.Bool
	// ahead holds the rooms whose next block this node is reserving in
	// the background.
	ahead sync.Map
	// reseeding holds the rooms whose lost cids this node is writing back
	// (*reseedCall).
	reseeding sync.Map
}

// NewRedisBroker returns a broker on rdb that names keys with keys and
// restores lost seq counters from seqs.
func NewRedisBroker(rdb redis.UniversalClient, keys chatlog.Keys, seqs SeqStore, cfg RedisConfig) *RedisBroker {
	if cfg.RecentLen <= 0 {
		cfg.RecentLen = 1000
	}
	if cfg.SeqBlock <= 0 {
		cfg.SeqBlock = 10000
	}
	if cfg.DedupeTTL <= 0 {
		cfg.DedupeTTL = 10 * time.Minute
	}
	if cfg.CheckWindow <= 0 {
		cfg.CheckWindow = time.Hour
	}
	// The hub's logger replaces slog's default at start; a broker whose
	// pipeline runs before (its tests) still has one to warn with.
	return &RedisBroker{rdb: rdb, keys: keys, cfg: cfg, seqs: seqs, subs: newSubscriptions(rdb, keys, cfg.Node), log: slog.Default()}
}

func (b *RedisBroker) start(ctx context.Context, h *Hub) error {
	b.gaps = h.metrics.gaps
	b.restores = h.metrics.restores
	b.log = h.log
	b.startPipeline(ctx, h.metrics.roundTrip)
	subs := b.subs
	subs.interval.Store(int64(h.cfg.ProbeInterval))
	subs.onResubscribe = func(shard, rooms int) {
		h.metrics.resubscribes.Inc()
		h.log.Warn("pub/sub shard delivered nothing; resubscribed", "shard", shard, "rooms", rooms)
	}
	if err := subs.open(ctx); err != nil {
		return err
	}
	warn := func(err error) { h.log.Warn("pub/sub", "err", err) }
	h.done.Add(1 + len(subs.shards))
	go func() {
		defer h.done.Done()
		b.receiveControl(ctx, h)
	}()
	for i := range subs.shards {
		go func() {
			defer h.done.Done()
			f := &fanout{h: h}
			defer f.closeRing()
			subs.receive(ctx, i, func(channel, payload string) {
				if room, ok := roomOf(channel); ok {
					f.deliverFrame(room, textFrame(payload))
				}
			}, warn)
		}()
	}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		subs.probe(ctx, h.cfg.ProbeInterval, warn)
	}()
	return nil
}

// receiveControl reads the membership channel, which every node hears.
func (b *RedisBroker) receiveControl(ctx context.Context, h *Hub) {
	for {
		msg, err := b.subs.control.ReceiveMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			h.log.Warn("pub/sub receive", "err", err)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		h.membershipEvent([]byte(msg.Payload))
	}
}

func (b *RedisBroker) close() { b.subs.close() }

func (b *RedisBroker) healthy() error {
	if silent := b.subs.silent(3 * b.subs.every()); len(silent) > 0 {
		return fmt.Errorf("pub/sub shards %v deliver nothing (probe unanswered); resubscribing", silent)
	}
	return nil
}

func (b *RedisBroker) workers() int { return 0 }

func (b *RedisBroker) register(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "moim_hub_pubsub_silent_shards", Help: "Pub/sub shards whose probe has not come back for three intervals (deliveries on them are stalled).",
	}, func() float64 { return float64(len(b.subs.silent(3 * b.subs.every()))) }))
}

var (
	errNotMember = errors.New("hub: not a member of the room")
	errNoSeq     = errors.New("hub: room seq counter missing")
)

// accept runs the send script, one pipelined round trip per message, and
// handles its rarer answers: a counter to restore after Redis lost data,
// a seq block to reserve in the store, a cid to look up in the store.
func (b *RedisBroker) accept(ctx context.Context, d *chatlog.Draft) (chatlog.Accepted, error) {
	checked := "0"
	for range 5 {
		res, err := b.send(ctx, d, checked)
		if err != nil {
			return chatlog.Accepted{}, err
		}
		switch res[0] {
		case "ok", "dup":
			seq, err1 := strconv.ParseInt(res[1], 10, 64)
			ts, err2 := strconv.ParseInt(res[2], 10, 64)
			if err := errors.Join(err1, err2); err != nil {
				return chatlog.Accepted{}, fmt.Errorf("hub: send script reply %q: %w", res, err)
			}
			if len(res) == 4 {
				b.reserveAhead(d.Room, seq)
			}
			return chatlog.Accepted{Seq: seq, TS: ts, Dup: res[0] == "dup"}, nil
		case "not_member":
			return chatlog.Accepted{}, errNotMember
		case "noseq":
			err = b.restore(ctx, d.Room)
		case "reserve":
			need, _ := strconv.ParseInt(res[1], 10, 64)
			err = b.reserve(ctx, d.Room, need)
		case "check":
			if held, ok := strings.CutPrefix(res[1], "h:"); ok {
				err = b.reseed(ctx, d.Room, held)
				break
			}
			var acc chatlog.Accepted
			var found bool
			if acc, found, err = b.findCID(ctx, d); err == nil && found {
				return acc, nil
			}
			checked = "1"
		default:
			return chatlog.Accepted{}, fmt.Errorf("hub: send script reply %q", res)
		}
		if err != nil {
			return chatlog.Accepted{}, err
		}
	}
	return chatlog.Accepted{}, fmt.Errorf("hub: room %d: send not settled after 5 attempts", d.Room)
}

// resendArg is the send script's ARGV[12]: "1" when a cid Redis does not
// know is to be looked up in the store first.
func resendArg(d *chatlog.Draft) string {
	if d.Resend {
		return "1"
	}
	return "0"
}

func (b *RedisBroker) send(ctx context.Context, d *chatlog.Draft, checked string) ([]string, error) {
	k := b.keys
	bucket := b.cidBucket(d.TS)
	keys := []string{k.Members(d.Room), k.Seq(d.Room), k.CIDs(d.Room, bucket), k.Recent(d.Room),
		k.Persist(k.Shard(d.Room)), k.SeqHi(d.Room), k.Restored(d.Room), k.Instance(k.Shard(d.Room)), k.SeqInstance(d.Room), k.FirstInstance(k.Shard(d.Room)),
		k.CIDs(d.Room, bucket-1)}
	args := []any{d.From, d.Head, d.Tail, b.cfg.RecentLen, b.cidExpiry(bucket),
		k.Channel(d.Room), d.Room, d.TS, b.subs.publishCommand(), checked, b.cfg.SeqBlock / 2, resendArg(d), chatlog.CIDField(d.From, d.CID)}
	var res []string
	var err error
	if c := b.subs.sendConn(d.Room); c != nil && !b.lingering.Load() {
		res, err = b.sendOn(ctx, c, keys, args...)
	} else {
		res, err = b.runSend(ctx, keys, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("hub: send script for room %d: %w", d.Room, err)
	}
	return res, nil
}

// cidBucket is the cids hash a send accepted at ts (unix ms) is kept in.
func (b *RedisBroker) cidBucket(ts int64) int64 { return ts / b.cfg.DedupeTTL.Milliseconds() }

// cidExpiry is when bucket's hash expires (unix ms): at the end of the
// next bucket, the last one whose sends look in it.
func (b *RedisBroker) cidExpiry(bucket int64) int64 {
	return (bucket + 2) * b.cfg.DedupeTTL.Milliseconds()
}

// rememberCID queues on pipe the (user, cid) send of room that got seq
// and ts, in the bucket of at (unix ms); nothing once that bucket's hash
// would have expired.
func (b *RedisBroker) rememberCID(ctx context.Context, pipe redis.Pipeliner, room, user int64, cid string, seq, ts, at int64) {
	bucket := b.cidBucket(at)
	until := b.cidExpiry(bucket)
	if until <= time.Now().UnixMilli() {
		return
	}
	key := b.keys.CIDs(room, bucket)
	pipe.HSet(ctx, key, chatlog.CIDField(user, cid), strconv.FormatInt(seq, 10)+":"+strconv.FormatInt(ts, 10))
	pipe.PExpireAt(ctx, key, time.UnixMilli(until))
}

// reserve makes seqs up to at least need (and a block beyond) durable in
// the store before Redis may hand them out.
func (b *RedisBroker) reserve(ctx context.Context, room, need int64) error {
	hi, err := b.seqs.ReserveSeqs(ctx, room, need+b.cfg.SeqBlock-1)
	if err != nil {
		return fmt.Errorf("hub: reserve seqs of room %d: %w", room, err)
	}
	if err := seqHiScript.Run(ctx, b.rdb, []string{b.keys.SeqHi(room)}, hi).Err(); err != nil {
		return fmt.Errorf("hub: raise seq high mark of room %d: %w", room, err)
	}
	return nil
}

// reserveAhead reserves the room's next block in the background, once per
// room at a time on this node, so sends do not wait for the store.
func (b *RedisBroker) reserveAhead(room, seq int64) {
	if _, busy := b.ahead.LoadOrStore(room, true); busy {
		return
	}
	go func() {
		defer b.ahead.Delete(room)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.reserve(ctx, room, seq+1); err != nil {
			b.log.Warn("reserving the next seq block ahead failed; sends will reserve it themselves", "room", room, "err", err)
		}
	}()
}

// restore sets a missing seq counter (Redis lost its data), or one last
// restored under another Redis instance (Redis came back with older data,
// so the counter may be behind seqs already acknowledged), past every seq
// that may have been acknowledged: the highest reserved block, not just
// the highest stored seq. The reserved seqs above what Redis and the store
// still hold may have named acknowledged messages that are gone: they are
// recorded as a gap, logged and counted. Read positions come back from
// the store. Cids: restore.lua flags the room, and when Redis came back
// with older data its next send first writes back the cids Redis
// lost (reseed); when it lost everything (or more than reseedLimit
// stored messages), sends of cids Redis does not know are looked up in
// the store first, for CheckWindow.
//
// The store is read before the script runs: a block reserved meanwhile
// was not in Redis's high mark before the loss, so no seq of it was
// acknowledged.
func (b *RedisBroker) restore(ctx context.Context, room int64) error {
	b.restores.Inc()
	stored, err := b.seqs.MaxSeq(ctx, room)
	if err != nil {
		return fmt.Errorf("hub: highest stored seq of room %d: %w", room, err)
	}
	reserved, err := b.seqs.ReserveSeqs(ctx, room, 0)
	if err != nil {
		return fmt.Errorf("hub: reserved seqs of room %d: %w", room, err)
	}
	k := b.keys
	res, err := restoreScript.Run(ctx, b.rdb, []string{k.Seq(room), k.Recent(room), k.Instance(k.Shard(room)), k.SeqInstance(room), k.Restored(room)},
		stored, reserved, int(b.cfg.CheckWindow.Seconds())).Int64Slice()
	if err != nil {
		return fmt.Errorf("hub: restore seq of room %d: %w", room, err)
	}
	if res[0] == 0 {
		return nil // another node restored it first
	}
	known, set := res[1], res[2]
	if set == 0 {
		return nil // a new room: no seq was ever handed out, no cid to look up
	}
	if set > known {
		g := chatlog.Gap{Room: room, From: known + 1, To: set}
		if err := b.seqs.AddGap(ctx, g); err != nil {
			return fmt.Errorf("hub: record gap %d–%d of room %d: %w", g.From, g.To, room, err)
		}
		b.gaps.Inc()
		b.log.Error("seq counter restored past a reserved block: seqs in the gap may name acknowledged messages Redis lost before they were stored",
			"room", room, "gap_from", g.From, "gap_to", g.To)
	}
	reads, err := b.seqs.ReadPositions(ctx, room)
	if err != nil {
		return fmt.Errorf("hub: stored read positions of room %d: %w", room, err)
	}
	pipe := b.rdb.Pipeline()
	for user, seq := range reads {
		// EVAL, not EVALSHA: a Redis that just restarted has no scripts,
		// and a pipeline does not fall back on NOSCRIPT.
		markReadScript.Eval(ctx, pipe, []string{b.keys.Reads(room), b.keys.Persist(b.keys.Shard(room)), b.keys.Seq(room)}, user, seq, room, "0")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("hub: restore read positions of room %d: %w", room, err)
	}
	return nil
}

// reseedLimit is the most stored messages whose cids a restore writes
// back into Redis; past it, unknown cids are looked up in the store for
// CheckWindow instead.
const reseedLimit = 10000

// reseedCall is one write-back of a room's cids in flight.
type reseedCall struct {
	done chan struct{}
	err  error
}

// reseed writes back, once per room at a time on this node, the cids a
// Redis that came back with older data lost: those of the room's stored
// messages past held (flag "h:<held>", restore.lua; the cids up to it
// survived with the counter) still within the dedupe window. A client
// retrying one of them gets its stored seq. The sends that find the room
// flagged meanwhile wait for the write-back instead of each asking the
// store about its cid, which on a busy room after a failover queued the
// store and the node behind it.
// The store is read after the counter was restored, so what the batcher
// stored meanwhile is included.
func (b *RedisBroker) reseed(ctx context.Context, room int64, held string) error {
	c := &reseedCall{done: make(chan struct{})}
	if prev, busy := b.reseeding.LoadOrStore(room, c); busy {
		p := prev.(*reseedCall)
		select {
		case <-p.done:
			return p.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.err = b.reseedCIDs(ctx, room, held)
	b.reseeding.Delete(room)
	close(c.done)
	return c.err
}

// reseedCIDs is reseed's work: the keys in one pipeline, then the flag
// ended (reseed.lua).
func (b *RedisBroker) reseedCIDs(ctx context.Context, room int64, held string) error {
	after, err := strconv.ParseInt(held, 10, 64)
	if err != nil {
		return fmt.Errorf("hub: restored flag of room %d: %w", room, err)
	}
	pipe := b.rdb.Pipeline()
	n, outcome := 0, "done"
	for {
		page, err := b.seqs.After(ctx, room, after, 500)
		if err != nil {
			return fmt.Errorf("hub: stored messages of room %d past seq %d: %w", room, after, err)
		}
		for _, raw := range page {
			var m struct {
				Seq, From, TS int64
				CID           string
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				return fmt.Errorf("hub: stored message of room %d: %w", room, err)
			}
			after = m.Seq
			if m.CID != "" {
				b.rememberCID(ctx, pipe, room, m.From, m.CID, m.Seq, m.TS, m.TS)
			}
		}
		if n += len(page); n > reseedLimit {
			outcome = "partial"
		}
		if len(page) < 500 || outcome == "partial" {
			break
		}
	}
	reseedScript.Eval(ctx, pipe, []string{b.keys.Restored(room)}, "h:"+held, outcome)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("hub: write back the cids of room %d: %w", room, err)
	}
	return nil
}

// findCID looks a send Redis does not remember up in the store and, when
// it was stored, remembers it again.
func (b *RedisBroker) findCID(ctx context.Context, d *chatlog.Draft) (chatlog.Accepted, bool, error) {
	acc, found, err := b.seqs.FindCID(ctx, d.Room, d.From, d.CID)
	if err != nil || !found {
		return acc, found, err
	}
	acc.Dup = true
	pipe := b.rdb.Pipeline()
	b.rememberCID(ctx, pipe, d.Room, d.From, d.CID, acc.Seq, acc.TS, d.TS)
	if _, err := pipe.Exec(ctx); err != nil {
		return acc, false, fmt.Errorf("hub: remember cid of room %d: %w", d.Room, err)
	}
	return acc, true, nil
}

// recent reads the room's recent stream after seq. It is complete when
// the stream reaches back to after, or the room's seq counter (never below
// a seq it gave out) is at most after; otherwise the caller asks the
// store for the rest.
func (b *RedisBroker) recent(ctx context.Context, room, after int64, limit int) (msgs [][]byte, complete bool, err error) {
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
	msgs, err = b.tombstoned(ctx, room, entries)
	return msgs, first <= after+1, err
}

func (b *RedisBroker) recentBefore(ctx context.Context, room, before int64, limit int) ([][]byte, error) {
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
	return b.tombstoned(ctx, room, entries)
}

// tombstoned returns the messages of recent stream entries as clients see
// them: deleted ones as tombstones, edited ones edited.
func (b *RedisBroker) tombstoned(ctx context.Context, room int64, entries []redis.XMessage) ([][]byte, error) {
	msgs := make([][]byte, 0, len(entries))
	if len(entries) == 0 {
		return msgs, nil
	}
	pipe := b.rdb.Pipeline()
	delCmd := pipe.SMembers(ctx, b.keys.Deleted(room))
	editCmd := pipe.HGetAll(ctx, b.keys.Edited(room))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("hub: read deleted and edited of room %d: %w", room, err)
	}
	gone := make(map[string]bool, len(delCmd.Val()))
	for _, s := range delCmd.Val() {
		gone[s] = true
	}
	edited := editCmd.Val()
	for _, e := range entries {
		m, ok := e.Values[chatlog.FieldMessage].(string)
		if !ok {
			continue
		}
		seq, _, _ := strings.Cut(e.ID, "-")
		switch {
		case gone[seq]:
			msgs = append(msgs, chatlog.Tombstone([]byte(m)))
		case edited[seq] != "":
			msgs = append(msgs, []byte(edited[seq]))
		default:
			msgs = append(msgs, []byte(m))
		}
	}
	return msgs, nil
}

func (b *RedisBroker) isMember(ctx context.Context, room, user int64) (bool, error) {
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

func (b *RedisBroker) publish(ctx context.Context, room int64, payload []byte) error {
	if err := b.subs.publish(ctx, b.rdb, b.keys.Channel(room), payload).Err(); err != nil {
		return fmt.Errorf("hub: publish to room %d: %w", room, err)
	}
	return nil
}

func (b *RedisBroker) publishMembership(ctx context.Context, payload []byte) error {
	return b.rdb.Publish(ctx, b.keys.MembershipChannel(), payload).Err()
}

func (b *RedisBroker) subscribe(ctx context.Context, rooms ...int64) error {
	return b.subs.add(ctx, rooms...)
}

func (b *RedisBroker) unsubscribe(ctx context.Context, rooms ...int64) error {
	return b.subs.remove(ctx, rooms...)
}

func (b *RedisBroker) message(ctx context.Context, room, seq int64) ([]byte, error) {
	id := strconv.FormatInt(seq, 10) + "-0"
	entries, err := b.rdb.XRange(ctx, b.keys.Recent(room), id, id).Result()
	if err != nil {
		return nil, fmt.Errorf("hub: read message %d of room %d: %w", seq, room, err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	m, _ := entries[0].Values[chatlog.FieldMessage].(string)
	return []byte(m), nil
}

func (b *RedisBroker) delete(ctx context.Context, room, seq, by int64) (bool, error) {
	ev := encode(deletedEvent{Type: "deleted", Room: room, Seq: seq, By: by})
	n, err := deleteScript.Run(ctx, b.rdb, []string{b.keys.Deleted(room), b.keys.Persist(b.keys.Shard(room))},
		room, seq, by, b.keys.Channel(room), ev, b.subs.publishCommand()).Int()
	if err != nil {
		return false, fmt.Errorf("hub: delete message %d of room %d: %w", seq, room, err)
	}
	return n == 1, nil
}

func (b *RedisBroker) edit(ctx context.Context, e *chatlog.Edit) (bool, error) {
	ev := encode(editedEvent{Type: "edited", Room: e.Room, Seq: e.Seq, Body: e.Body, EditedAt: e.At})
	n, err := editScript.Run(ctx, b.rdb, []string{b.keys.Deleted(e.Room), b.keys.Edited(e.Room), b.keys.Persist(b.keys.Shard(e.Room))},
		e.Seq, e.Msg, b.keys.Channel(e.Room), ev, b.subs.publishCommand()).Int()
	if err != nil {
		return false, fmt.Errorf("hub: edit message %d of room %d: %w", e.Seq, e.Room, err)
	}
	e.Done = n == 1
	return e.Done, nil
}

func (b *RedisBroker) publishAll(ctx context.Context, rooms []int64, payload []byte) error {
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

// markRead raises the position in Redis and queues it for the store, so
// it outlives Redis losing its data.
func (b *RedisBroker) markRead(ctx context.Context, room, user, seq int64) (int64, error) {
	k := b.keys
	pos, err := markReadScript.Run(ctx, b.rdb, []string{k.Reads(room), k.Persist(k.Shard(room)), k.Seq(room)}, user, seq, room, "1").Int64()
	if err != nil {
		return 0, fmt.Errorf("hub: mark read in room %d: %w", room, err)
	}
	return pos, nil
}

func (b *RedisBroker) readPositions(ctx context.Context, room int64) (map[int64]int64, error) {
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

// activity reads, in one pipeline, each room's seq counter, the user's
// read position and the newest message (as a tombstone when deleted).
func (b *RedisBroker) activity(ctx context.Context, roomIDs []int64, user int64) (map[int64]chatlog.Activity, error) {
	type cmds struct {
		seq  *redis.StringCmd
		read *redis.StringCmd
		last *redis.XMessageSliceCmd
		del  *redis.StringSliceCmd
		edit *redis.MapStringStringCmd
	}
	pipe := b.rdb.Pipeline()
	cs := make([]cmds, len(roomIDs))
	uid := strconv.FormatInt(user, 10)
	for i, r := range roomIDs {
		cs[i] = cmds{
			seq:  pipe.Get(ctx, b.keys.Seq(r)),
			read: pipe.HGet(ctx, b.keys.Reads(r), uid),
			last: pipe.XRevRangeN(ctx, b.keys.Recent(r), "+", "-", 1),
			del:  pipe.SMembers(ctx, b.keys.Deleted(r)),
			edit: pipe.HGetAll(ctx, b.keys.Edited(r)),
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("hub: read activity of %d rooms: %w", len(roomIDs), err)
	}
	out := make(map[int64]chatlog.Activity, len(roomIDs))
	for i, r := range roomIDs {
		var a chatlog.Activity
		a.Seq, _ = cs[i].seq.Int64()
		a.Read, _ = cs[i].read.Int64()
		if entries := cs[i].last.Val(); len(entries) == 1 {
			if msg, ok := entries[0].Values[chatlog.FieldMessage].(string); ok {
				a.Last = json.RawMessage(msg)
				lastSeq, _, _ := strings.Cut(entries[0].ID, "-")
				if m := cs[i].edit.Val()[lastSeq]; m != "" {
					a.Last = json.RawMessage(m)
				}
				for _, d := range cs[i].del.Val() {
					if d == lastSeq {
						a.Last = chatlog.Tombstone(a.Last)
					}
				}
			}
		}
		out[r] = a
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
