package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"moim/chatlog"
)

// group is the consumer group every node's batcher joins, so the shards'
// entries are shared out and each is stored by one batcher.
const group = "moim-store"

// BatcherConfig tunes the batcher. Zero fields take the defaults in brackets.
type BatcherConfig struct {
	// Consumer names this batcher in the group; stable across restarts so
	// a restarted node re-reads its own pending entries [node id].
	Consumer string
	// Count is the most entries read per shard per round [500].
	Count int
	// Poll is how long the batcher waits before reading again after
	// finding nothing [50ms].
	Poll time.Duration
	// Linger is how long the batcher waits after a round that read less
	// than a full batch, so the next write carries more messages [100ms]:
	// the store's cost is mostly per write (a transaction, a round trip),
	// and a read returns as soon as one entry is there.
	Linger time.Duration
	// ClaimIdle is how long an entry may sit pending under another
	// consumer before this one claims it [30s].
	ClaimIdle time.Duration
	// MaxBackoff caps the wait between retries while the store is down [5s].
	MaxBackoff time.Duration
}

// Batcher drains the persistence streams into the store in bulk.
type Batcher struct {
	cfg     BatcherConfig
	rdb     redis.UniversalClient
	keys    chatlog.Keys
	store   Store
	log     *slog.Logger
	metrics *batcherMetrics
	backlog atomic.Int64
	oldest  atomic.Int64 // unix ms of the oldest unstored entry, 0 when none
}

// NewBatcher returns a batcher; Run starts it.
func NewBatcher(cfg BatcherConfig, rdb redis.UniversalClient, keys chatlog.Keys, st Store, reg prometheus.Registerer, log *slog.Logger) *Batcher {
	if cfg.Count <= 0 {
		cfg.Count = 500
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 100 * time.Millisecond
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	if cfg.ClaimIdle <= 0 {
		cfg.ClaimIdle = 30 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	b := &Batcher{cfg: cfg, rdb: rdb, keys: keys, store: st, log: log}
	b.metrics = newBatcherMetrics(reg, b)
	if j, ok := st.(journaler); ok {
		j.SetConflictHandler(b.conflicted)
	}
	return b
}

// journaler is a store that takes the batcher's messages into a journal
// and moves them into its tables beside the batcher (SQLite).
type journaler interface {
	Journal(ctx context.Context, msgs []chatlog.Entry) error
	Tidy(ctx context.Context) error
	SetConflictHandler(f func([]Conflict))
}

// conflicted counts and logs messages the store refused: two messages
// acknowledged under one seq.
func (b *Batcher) conflicted(cs []Conflict) {
	b.metrics.conflicts.Add(float64(len(cs)))
	b.log.Error("two messages acknowledged under one seq; the second is refused and kept in the store's conflicts", "err", &ConflictError{Conflicts: cs})
}

// insert stores msgs: into a journaling store's journal, else Insert.
func (b *Batcher) insert(ctx context.Context, msgs []chatlog.Entry) error {
	if j, ok := b.store.(journaler); ok {
		return j.Journal(ctx, msgs)
	}
	err := b.store.Insert(ctx, msgs)
	var ce *ConflictError
	if errors.As(err, &ce) {
		b.conflicted(ce.Conflicts)
		return nil
	}
	return err
}

// offerMoves is how long after its last offer ended a journaling store
// is offered its moves again; it makes them only once due (SQLite: a
// slice of rooms 1/128 s after its last move ended, so counting from the
// end lets each offer find its slice due). A 4 ms ticker offered them
// twice as often (docs/BENCHMARKS.md, "Sessions 26–27").
const offerMoves = 8 * time.Millisecond

// moves runs a journaling store's moves until ctx ends. A failed move is
// retried at its slice's next turn and logged at most once a second.
func (b *Batcher) moves(ctx context.Context, j journaler) {
	t := time.NewTimer(offerMoves)
	defer t.Stop()
	var logged time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := j.Tidy(ctx); err != nil && time.Since(logged) > time.Second {
			logged = time.Now()
			b.log.Warn("batcher: move journaled messages", "err", err)
		}
		t.Reset(offerMoves)
	}
}

func (b *Batcher) streams() []string {
	s := make([]string, b.keys.Shards)
	for i := range s {
		s[i] = b.keys.Persist(i)
	}
	return s
}

// ensureGroups creates the consumer group on every shard that lacks it
// (first start, or Redis lost its data), reading from the beginning.
func (b *Batcher) ensureGroups(ctx context.Context, streams []string) error {
	for _, s := range streams {
		err := b.rdb.XGroupCreateMkStream(ctx, s, group, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("store: create group on %s: %w", s, err)
		}
	}
	return nil
}

// Run drains until ctx ends, then returns after storing what it had read.
func (b *Batcher) Run(ctx context.Context) error {
	streams := b.streams()
	if err := b.ensureGroups(ctx, streams); err != nil {
		return err
	}
	go b.watch(ctx, streams)
	if j, ok := b.store.(journaler); ok {
		moved := make(chan struct{})
		go func() {
			defer close(moved)
			b.moves(ctx, j)
		}()
		defer func() { <-moved }()
	}
	// First what this consumer read before a crash or restart.
	for {
		n, err := b.round(ctx, ctx, streams, "0")
		if err != nil || n == 0 {
			break
		}
	}
	lastClaim := time.Now()
	for ctx.Err() == nil {
		if time.Since(lastClaim) > b.cfg.ClaimIdle/2 {
			b.claim(ctx, streams)
			lastClaim = time.Now()
		}
		n, err := b.round(ctx, ctx, streams, ">")
		switch {
		case err == nil && n == 0:
			b.sleep(ctx, b.cfg.Poll)
		case err == nil && n < b.cfg.Count:
			b.sleep(ctx, b.cfg.Linger)
		case err == nil || ctx.Err() != nil:
		case strings.Contains(err.Error(), "NOGROUP"):
			// Redis restarted empty or was flushed: start over on what
			// the hub appends from now on.
			b.log.Warn("batcher: consumer group gone; recreating it", "err", err)
			if err := b.ensureGroups(ctx, streams); err != nil {
				b.log.Warn("batcher", "err", err)
				b.sleep(ctx, time.Second)
			}
		default:
			b.log.Warn("batcher read", "err", err)
			b.sleep(ctx, time.Second)
		}
	}
	// Shutting down: the hub has stopped accepting, so store what is left
	// while the store answers; what it cannot take stays pending in Redis
	// for this consumer's restart or another batcher's claim.
	for {
		n, err := b.round(context.Background(), ctx, streams, ">")
		if err != nil || n == 0 {
			return nil
		}
	}
}

// round reads one batch from every shard (new entries with ">", this
// consumer's pending ones with "0") and stores it. Each shard is its own
// XREADGROUP, pipelined: on a Redis Cluster the shards live in different
// slots, and one command may not name keys of several. ctx bounds the
// reads, run is the batcher's run (flush).
func (b *Batcher) round(ctx, run context.Context, streams []string, from string) (int, error) {
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.XStreamSliceCmd, len(streams))
	for i, s := range streams {
		cmds[i] = pipe.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: b.cfg.Consumer, Streams: []string{s, from}, Count: int64(b.cfg.Count), Block: -1})
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	var res []redis.XStream
	n := 0
	for _, c := range cmds {
		r, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("store: read streams: %w", err)
		}
		for _, s := range r {
			n += len(s.Messages)
		}
		res = append(res, r...)
	}
	if n > 0 && !b.flush(run, res) {
		return 0, errors.New("store: unavailable while shutting down; the batch stays pending in Redis")
	}
	return n, nil
}

// claim takes over entries another consumer read but never stored (its
// node died) once they have been pending for ClaimIdle.
func (b *Batcher) claim(ctx context.Context, streams []string) {
	for _, s := range streams {
		start := "0-0"
		for {
			msgs, next, err := b.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
				Stream: s, Group: group, Consumer: b.cfg.Consumer, MinIdle: b.cfg.ClaimIdle, Start: start, Count: int64(b.cfg.Count),
			}).Result()
			if err != nil {
				if ctx.Err() == nil {
					b.log.Warn("batcher claim", "stream", s, "err", err)
				}
				break
			}
			if len(msgs) > 0 {
				b.log.Info("claimed entries of a departed batcher", "stream", s, "entries", len(msgs))
				if !b.flush(ctx, []redis.XStream{{Stream: s, Messages: msgs}}) {
					return
				}
			}
			if next == "0-0" || len(msgs) == 0 {
				break
			}
			start = next
		}
	}
}

// flush stores one batch, retrying with capped backoff until it is stored
// (entries stay in Redis meanwhile), then acknowledges and deletes it. A
// batch read is finished on shutdown if the store takes it; once run has
// ended, a failed attempt is the last one and flush reports false, the
// entries left pending in Redis (a node whose store is down must still
// stop: it waited on the store for ever). Messages the store refuses as
// conflicts are logged and counted, never dropped silently: the store
// keeps them aside.
func (b *Batcher) flush(run context.Context, batch []redis.XStream) bool {
	var msgs []chatlog.Entry
	var reads []chatlog.ReadMark
	var edits []chatlog.Entry
	deletes := map[int64][]int64{}
	for _, s := range batch {
		for _, x := range s.Messages {
			e, err := chatlog.DecodeEntry(x.Values)
			switch {
			case err != nil:
				b.log.Error("unreadable persistence entry; dropping it", "stream", s.Stream, "id", x.ID, "err", err)
			case e.Edited:
				edits = append(edits, e)
			case e.Message != nil:
				msgs = append(msgs, e)
			case e.Deleted:
				deletes[e.Room] = append(deletes[e.Room], e.Seq)
			default:
				reads = append(reads, chatlog.ReadMark{Room: e.Room, User: e.Reader, Seq: e.Seq})
			}
		}
	}
	wait := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: b.cfg.MaxBackoff}
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := b.insert(ctx, msgs)
		// Edits after the messages they edit (an edit's entry always
		// follows its message's in the shard) and before deletions, so a
		// message edited then deleted stays deleted.
		if err == nil && len(edits) > 0 {
			err = b.store.Edit(ctx, edits)
		}
		for room, seqs := range deletes {
			if err == nil {
				err = b.store.Tombstone(ctx, room, seqs)
			}
		}
		if err == nil {
			err = b.store.SaveReads(ctx, reads)
		}
		cancel()
		if err == nil {
			b.metrics.flush.Observe(time.Since(start).Seconds())
			b.metrics.batch.Observe(float64(len(msgs)))
			b.metrics.stored.Add(float64(len(msgs)))
			break
		}
		b.metrics.errors.Inc()
		if run.Err() != nil {
			b.log.Warn("store unavailable while shutting down; the batch stays pending in Redis", "messages", len(msgs), "err", err)
			return false
		}
		delay := wait.NextBackOff()
		b.log.Warn("store unavailable; keeping the batch in Redis", "messages", len(msgs), "attempt", attempt, "retry_in", delay, "err", err)
		b.sleep(run, delay)
	}
	b.ack(batch)
	return true
}

// ack acknowledges and deletes stored entries; only now do they leave Redis.
func (b *Batcher) ack(batch []redis.XStream) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for _, s := range batch {
		ids := make([]string, len(s.Messages))
		for i, e := range s.Messages {
			ids[i] = e.ID
		}
		pipe.XAck(ctx, s.Stream, group, ids...)
		pipe.XDel(ctx, s.Stream, ids...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		// The entries stay pending; they are stored again (harmlessly,
		// the unique index drops them) when re-read or claimed.
		b.log.Warn("batcher ack", "err", err)
	}
}

// watch measures the backlog (entries not yet stored) and the age of the
// oldest one every second, for metrics and /readyz.
func (b *Batcher) watch(ctx context.Context, streams []string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pipe := b.rdb.Pipeline()
		lens := make([]*redis.IntCmd, len(streams))
		heads := make([]*redis.XMessageSliceCmd, len(streams))
		for i, s := range streams {
			lens[i] = pipe.XLen(ctx, s)
			heads[i] = pipe.XRangeN(ctx, s, "-", "+", 1)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			continue
		}
		var total, oldest int64
		for i := range streams {
			total += lens[i].Val()
			if h := heads[i].Val(); len(h) == 1 {
				ms, _ := strconv.ParseInt(strings.SplitN(h[0].ID, "-", 2)[0], 10, 64)
				if oldest == 0 || ms < oldest {
					oldest = ms
				}
			}
		}
		b.backlog.Store(total)
		b.oldest.Store(oldest)
	}
}

// Backlog is the number of accepted messages not yet stored and the age
// of the oldest, as last measured.
func (b *Batcher) Backlog() (int64, time.Duration) {
	oldest := b.oldest.Load()
	if oldest == 0 {
		return b.backlog.Load(), 0
	}
	return b.backlog.Load(), time.Since(time.UnixMilli(oldest))
}

func (b *Batcher) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
