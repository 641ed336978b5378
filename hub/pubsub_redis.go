package hub

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"moim/chatlog"
)

// subscriptions is the node's pub/sub side: one connection for the
// membership channel (classic pub/sub, which reaches every node of a
// cluster) and "shard" connections for the room channels, each with a
// probe channel of its own. On Redis Cluster there is one shard
// connection per persistence shard and they use sharded pub/sub
// (SSUBSCRIBE/SPUBLISH): a message then travels only within the shard
// that owns the room's slot instead of to every cluster node, and all of a
// shard's channels share one hash tag, so one connection to the slot's
// owner carries them. A single Redis uses classic SUBSCRIBE on one shard
// connection per core (GOMAXPROCS, at most one per persistence shard),
// rooms spread over them by persistence shard: a connection per
// persistence shard there would split the same traffic into more, smaller
// socket writes in Redis, reads and goroutine wake-ups in the node, with
// no more cores to run them on. There each shard connection is the
// node's own (ownLink), which also carries its rooms' sends while they
// come one at a time (sendConn).
type subscriptions struct {
	rdb     redis.UniversalClient
	keys    chatlog.Keys
	sharded bool
	node    string
	control *redis.PubSub
	shards  []*shardSub
	// onResubscribe counts a shard connection replaced after its probe
	// went unanswered.
	onResubscribe func(shard, rooms int)
	// interval is how often probe publishes (ns), set before it starts.
	interval atomic.Int64
}

// every is the probe interval.
func (s *subscriptions) every() time.Duration { return time.Duration(s.interval.Load()) }

// shardSub is one shard's subscription and what it should carry.
type shardSub struct {
	mu    sync.Mutex
	ps    shardLink
	rooms map[int64]struct{}
	// prev is the connection ps replaced, read until it carries mark (a
	// probe published once ps was subscribed): it alone holds what was
	// published before that, and closing it at once would drop whatever
	// it had not yet delivered — under load, a backlog.
	prev shardLink
	mark string
	// direct is ps while it is the node's own connection and no prev is
	// drained: the connection sends may take (sendConn), read without mu.
	direct atomic.Pointer[ownLink]
	// heard is when this node last received its own probe on the shard
	// (unix ns); the connection is healthy while that is recent.
	heard atomic.Int64
	// replaced is when the connection was last replaced (unix ns).
	replaced atomic.Int64
	// read is when receive last read anything on the shard (unix ns): a
	// prev that stays silent is dead and is given up on.
	read atomic.Int64
	// pings are the confirmations change awaits, oldest first: a PING on
	// the connection being read, answered after the SUBSCRIBE before it.
	pings    []*pendingPing
	nextPing uint64
}

// pendingPing is one PING awaiting its pong.
type pendingPing struct {
	n    uint64
	done chan struct{}
}

func newSubscriptions(rdb redis.UniversalClient, keys chatlog.Keys, node string) *subscriptions {
	_, cluster := rdb.(*redis.ClusterClient)
	s := &subscriptions{rdb: rdb, keys: keys, sharded: cluster, node: node, onResubscribe: func(int, int) {}}
	n := keys.Shards
	if !cluster {
		n = min(n, runtime.GOMAXPROCS(0))
	}
	s.shards = make([]*shardSub, n)
	for i := range s.shards {
		s.shards[i] = &shardSub{rooms: map[int64]struct{}{}}
	}
	return s
}

// open subscribes the membership channel and every shard's probe channel.
func (s *subscriptions) open(ctx context.Context) error {
	s.control = s.rdb.Subscribe(ctx, s.keys.MembershipChannel())
	if _, err := s.control.Receive(ctx); err != nil {
		_ = s.control.Close()
		return fmt.Errorf("hub: subscribe: %w", err)
	}
	now := time.Now().UnixNano()
	for i, sh := range s.shards {
		ps, err := s.subscribe(ctx, i, nil)
		if err != nil {
			s.close()
			return err
		}
		sh.set(ps, nil)
		sh.heard.Store(now)
	}
	return nil
}

// subscribe opens a shard connection carrying its probe channel and
// rooms: go-redis's PubSub on a cluster, the node's own connection, which
// also carries the shard's sends, on a single Redis.
func (s *subscriptions) subscribe(ctx context.Context, shard int, rooms map[int64]struct{}) (shardLink, error) {
	chs := make([]string, 0, 1+len(rooms))
	chs = append(chs, s.keys.Probe(shard)) // first: a cluster client picks the slot's node by it
	for r := range rooms {
		chs = append(chs, s.keys.Channel(r))
	}
	if c, ok := s.rdb.(*redis.Client); ok {
		l, err := dialOwnLink(ctx, c.Options(), chs)
		var refused redis.Error
		switch {
		case err == nil:
			return l, nil
		case !errors.As(err, &refused):
			return nil, fmt.Errorf("hub: subscribe shard %d: %w", shard, err)
		}
		// A Redis before 6 answers HELLO 3 with an error: go-redis's
		// PubSub speaks RESP2 to it, and sends take its pipeline.
	}
	var ps *redis.PubSub
	if s.sharded {
		ps = s.rdb.SSubscribe(ctx, chs...)
	} else {
		ps = s.rdb.Subscribe(ctx, chs...)
	}
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("hub: subscribe shard %d: %w", shard, err)
	}
	return &pubsubLink{ps: ps, sharded: s.sharded}, nil
}

// sendConn is the connection that carries room's sends along with its
// messages, or nil for go-redis's pipeline: on a cluster, while the
// shard's connection is down, and while a replaced one is drained (its
// replies would wait behind the old connection's reads).
func (s *subscriptions) sendConn(room int64) *shardConn {
	l := s.shards[s.keys.Shard(room)%len(s.shards)].direct.Load()
	if l == nil {
		return nil
	}
	return l.live()
}

// set makes ps the shard's connection and prev the one being drained
// (nil: none); call it under sh.mu.
func (sh *shardSub) set(ps, prev shardLink) {
	sh.ps, sh.prev = ps, prev
	l, own := ps.(*ownLink)
	if !own || prev != nil {
		l = nil
	}
	sh.direct.Store(l)
}

func (s *subscriptions) close() {
	if s.control != nil {
		_ = s.control.Close()
	}
	for _, sh := range s.shards {
		sh.mu.Lock()
		if sh.ps != nil {
			_ = sh.ps.close()
		}
		if sh.prev != nil {
			_ = sh.prev.close()
		}
		sh.mu.Unlock()
	}
}

// byShard groups rooms by the shard connection that carries them.
func (s *subscriptions) byShard(rooms []int64) map[int][]int64 {
	out := map[int][]int64{}
	for _, r := range rooms {
		sh := s.keys.Shard(r) % len(s.shards)
		out[sh] = append(out[sh], r)
	}
	return out
}

// add starts delivering rooms to this node.
func (s *subscriptions) add(ctx context.Context, rooms ...int64) error {
	return s.change(ctx, rooms, true)
}

// remove stops delivering rooms to this node.
func (s *subscriptions) remove(ctx context.Context, rooms ...int64) error {
	return s.change(ctx, rooms, false)
}

// change subscribes (on) or unsubscribes rooms on their shards'
// connections and remembers them for a resubscribe. Subscribing returns
// once Redis confirmed it on every shard: each shard gets one SUBSCRIBE
// for its rooms and a PING behind it, all shards at once, and Redis
// answers a connection's commands in order.
func (s *subscriptions) change(ctx context.Context, rooms []int64, on bool) error {
	var errs []error
	var pongs []chan struct{}
	for shard, rs := range s.byShard(rooms) {
		sh := s.shards[shard]
		sh.mu.Lock()
		chs := make([]string, len(rs))
		for i, r := range rs {
			if on {
				sh.rooms[r] = struct{}{}
			} else {
				delete(sh.rooms, r)
			}
			chs[i] = s.keys.Channel(r)
		}
		// While prev is drained, what ps carries before the mark is
		// dropped as prev's to deliver, so prev must carry a room added
		// meanwhile too (it is subscribed first). Its errors are not the
		// caller's: prev is being retired, and given up on if it fails.
		if sh.prev != nil {
			_ = sh.prev.subscribe(ctx, chs, on)
		}
		err := sh.ps.subscribe(ctx, chs, on)
		if err == nil && on {
			var done chan struct{}
			done, err = sh.ping(ctx)
			pongs = append(pongs, done)
		}
		sh.mu.Unlock()
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, done := range pongs {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("hub: subscription unconfirmed: %w", ctx.Err())
		}
	}
	return nil
}

// ping writes a PING on the connection receive reads (prev while it is
// drained) and returns what closes when its pong is read; call it under
// sh.mu.
func (sh *shardSub) ping(ctx context.Context) (chan struct{}, error) {
	sh.nextPing++
	p := &pendingPing{n: sh.nextPing, done: make(chan struct{})}
	on := sh.ps
	if sh.prev != nil {
		on = sh.prev
	}
	if err := on.ping(ctx, pingPrefix+strconv.FormatUint(p.n, 10)); err != nil {
		return nil, fmt.Errorf("hub: confirm subscription: %w", err)
	}
	sh.pings = append(sh.pings, p)
	return p.done, nil
}

// pingPrefix starts the payload of a confirmation PING.
const pingPrefix = "moim-join-"

// pong settles the pings up to the one payload answers: Redis answers
// one connection's commands in order.
func (sh *shardSub) pong(payload string) {
	n, err := strconv.ParseUint(strings.TrimPrefix(payload, pingPrefix), 10, 64)
	if err != nil || !strings.HasPrefix(payload, pingPrefix) {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i := 0
	for ; i < len(sh.pings) && sh.pings[i].n <= n; i++ {
		close(sh.pings[i].done)
	}
	sh.pings = sh.pings[i:]
}

// reping asks again on the connection now read for the pings whose
// connection failed or was retired before their pongs came: one newer
// ping settles them all.
func (sh *shardSub) reping(ctx context.Context, warn func(error)) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.pings) == 0 {
		return
	}
	if _, err := sh.ping(ctx); err != nil {
		warn(err)
	}
}

// next reads from's next message, settling pings on the way.
func (sh *shardSub) next(ctx context.Context, from shardLink) (shardEvent, error) {
	for {
		ev, err := from.next(ctx)
		if err != nil || !ev.pong {
			return ev, err
		}
		sh.pong(ev.payload)
	}
}

// publish sends payload on a shard channel (a room's or a probe), with
// sharded pub/sub on a cluster.
func (s *subscriptions) publish(ctx context.Context, c redis.Cmdable, channel string, payload any) *redis.IntCmd {
	if s.sharded {
		return c.SPublish(ctx, channel, payload)
	}
	return c.Publish(ctx, channel, payload)
}

// publishCommand is the command the Lua scripts publish with.
func (s *subscriptions) publishCommand() string {
	if s.sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// receive reads one shard's connection until ctx ends, handing messages
// to deliver. After probe replaces the connection it reads the old one
// until the handover mark, then the new one from past the mark: each
// message is delivered once and none is skipped. When the old one fails
// before its mark, what the new one carried before the mark is delivered
// from past the last message the old one delivered: nothing twice, and
// only what never reached the old one before it failed is missed.
func (s *subscriptions) receive(ctx context.Context, shard int, deliver func(channel, payload string), warn func(error)) {
	sh := s.shards[shard]
	probe := s.keys.Probe(shard)
	// skip is the mark the connection being read carries after what the
	// old one already delivered; "" when there is nothing to drop. While
	// catchUp, those messages are held instead, to be sorted out at the
	// mark against the last one delivered.
	skip, catchUp := "", false
	var held []shardEvent
	var last shardEvent
	// endSkip delivers what of held the old connection did not, and
	// stops skipping.
	endSkip := func() {
		for _, m := range notDelivered(held, last) {
			deliver(m.channel, m.payload)
			last = m
		}
		skip, catchUp, held = "", false, held[:0]
	}
	for {
		sh.mu.Lock()
		from := sh.ps
		if sh.prev != nil {
			from = sh.prev
		}
		sh.mu.Unlock()
		msg, err := sh.next(ctx, from)
		if err != nil {
			sh.mu.Lock()
			replaced := from != sh.ps
			if replaced && sh.prev == from {
				sh.set(sh.ps, nil)
			}
			mark := sh.mark
			sh.mu.Unlock()
			if replaced {
				_ = from.close()
				skip, catchUp, held = mark, mark != "", held[:0]
				sh.reping(ctx, warn)
				continue
			}
		}
		if err == nil {
			sh.read.Store(time.Now().UnixNano())
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, redis.ErrClosed):
			return // closing
		case err != nil:
			warn(err)
			// The link reconnects on the next read (or ping), which may
			// lose the mark: stop waiting for it.
			endSkip()
			sleep(ctx, 100*time.Millisecond)
			sh.reping(ctx, warn) // the link resubscribes before it
		case msg.channel != probe && catchUp:
			held = append(held, msg)
		case msg.channel != probe:
			if skip == "" {
				deliver(msg.channel, msg.payload)
				last = msg
			}
		case msg.payload == s.node:
			sh.heard.Store(time.Now().UnixNano())
		case skip != "" && msg.payload == skip:
			endSkip() // what follows, the old connection did not see
		case sh.handedOver(from, msg.payload):
			skip = msg.payload
			sh.reping(ctx, warn)
		}
	}
}

// notDelivered is what of held, the messages a new connection carried
// before the handover mark, follows last, the last message delivered:
// held begins with what the old connection also carried, in the same
// order, so only what follows last is new; when last is not in held, the
// old connection delivered none of them.
func notDelivered(held []shardEvent, last shardEvent) []shardEvent {
	for i := len(held) - 1; i >= 0; i-- {
		if held[i] == last {
			return held[i+1:]
		}
	}
	return held
}

// handedOver reports whether payload, read on from, is the mark that ends
// the drain of from, and if so retires from.
func (sh *shardSub) handedOver(from shardLink, payload string) bool {
	sh.mu.Lock()
	done := sh.prev == from && sh.mark == payload
	if done {
		sh.set(sh.ps, nil)
	}
	sh.mu.Unlock()
	if done {
		_ = from.close()
	}
	return done
}

// probe publishes this node's name on every shard's probe channel each
// interval and replaces a shard connection that has not heard it back for
// three intervals: after a failover or a slot move a subscription can stay
// connected (and pass go-redis's pings) while nothing reaches it. A
// replaced connection still being drained is given up on once nothing has
// been read for three intervals (its own probes would have come).
func (s *subscriptions) probe(ctx context.Context, every time.Duration, warn func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pipe := s.rdb.Pipeline()
		for i := range s.shards {
			s.publish(ctx, pipe, s.keys.Probe(i), s.node)
		}
		if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
			warn(fmt.Errorf("probe: %w", err))
		}
		for i, sh := range s.shards {
			sh.mu.Lock()
			draining := sh.prev != nil
			if draining && ago(&sh.read) > 3*every {
				_ = sh.prev.close() // receive then reads the new one
				sh.set(sh.ps, nil)
			}
			sh.mu.Unlock()
			if !draining && ago(&sh.heard) > 3*every && ago(&sh.replaced) > 3*every {
				s.resubscribe(ctx, i, warn)
			}
		}
	}
}

// resubscribe replaces a shard's connection with a fresh one carrying the
// same channels, and publishes the mark that ends the old one's drain.
func (s *subscriptions) resubscribe(ctx context.Context, shard int, warn func(error)) {
	sh := s.shards[shard]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ps, err := s.subscribe(ctx, shard, sh.rooms)
	if err != nil {
		warn(err)
		return
	}
	now := time.Now().UnixNano()
	sh.set(ps, sh.ps)
	sh.mark = s.node + "/handover/" + strconv.FormatInt(now, 10)
	sh.replaced.Store(now)
	if err := s.publish(ctx, s.rdb, s.keys.Probe(shard), sh.mark).Err(); err != nil {
		// Without the mark the drain would never end: give the old
		// connection up now.
		warn(fmt.Errorf("hub: shard %d handover: %w", shard, err))
		_ = sh.prev.close()
		sh.set(sh.ps, nil)
		sh.mark = ""
	}
	s.onResubscribe(shard, len(sh.rooms))
}

func ago(t *atomic.Int64) time.Duration { return time.Since(time.Unix(0, t.Load())) }

// silent lists the shards whose probe has gone unanswered for longer
// than limit.
func (s *subscriptions) silent(limit time.Duration) []string {
	var out []string
	for i, sh := range s.shards {
		if ago(&sh.heard) > limit {
			out = append(out, strconv.Itoa(i))
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
