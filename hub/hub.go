// Package hub is Moim's real-time side: WebSocket connections owned by an
// epoll loop, the send path through one Redis script, and fan-out of room
// events to local connections, framed once per node.
package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"moim/api"
	"moim/chatlog"
)

// Config tunes a hub. Zero fields take the defaults in brackets.
type Config struct {
	// NodeID is sent to clients in "ready".
	NodeID string
	// Workers read and handle frames of readable connections [64; 512 on
	// the single-node engine]. On Redis each waits for its send's ack (a
	// round trip), so there are more than cores; on the single-node engine
	// a send is queued for the group commit and acked when it is done, but
	// reads, deletions and edits wait for their commit, and many workers
	// let those join one commit.
	Workers int
	// WriteQueueBytes is how much may wait for a slow client before it is
	// closed with 1013 [1 MiB, about 3,000 chat messages].
	WriteQueueBytes int
	// WriteTimeout bounds a blocked write to a slow client [10s].
	WriteTimeout time.Duration
	// PlainWrites writes an event to its room's sockets one write(2) each
	// instead of one io_uring call for all of them [false: the ring, where
	// the kernel allows it; on the project's VM the node on Redis spent
	// 14 % less CPU per delivery, docs/BENCHMARKS.md "Session 41"].
	PlainWrites bool
	// PingInterval is how often the server pings [30s]; IdleTimeout closes
	// a connection silent for that long [75s, two missed pings and slack].
	PingInterval, IdleTimeout time.Duration
	// SendRate and SendBurst are each connection's token bucket for
	// send and typing [20/s, burst 40]: a local check before Budget's
	// shared one, so one flooding socket costs no limiter calls.
	SendRate  float64
	SendBurst int
	// Budget is each user's limits over all their sockets, REST calls
	// and nodes [none].
	Budget Budget
	// RecentLen caps each room's recent stream, which serves sync [1000].
	RecentLen int
	// SyncLimit is the most messages one sync returns per room [500]; the
	// client asks again from the last seq it got.
	SyncLimit int
	// AllowedOrigins lists browser origins allowed to connect; empty means
	// the request's own host only. AnyOrigin allows every origin (embedded
	// mode, where a developer opens pages from anywhere).
	AllowedOrigins []string
	AnyOrigin      bool
	// TokenCheck is how often every open connection's token is checked
	// again [1m], which closes those of deleted users and expired tokens;
	// TokensChanged closes revoked ones at once.
	TokenCheck time.Duration
	// ProbeInterval is how often the node checks that each pub/sub shard
	// still delivers by publishing to itself [5s]; a shard silent for
	// three intervals is resubscribed and fails /readyz meanwhile.
	ProbeInterval time.Duration
	// BusyLag is the lag past which the node refuses new sends as busy
	// [250ms] (admission.go).
	BusyLag time.Duration
	// Upgrades is how many WebSocket upgrades the node works on at once
	// [4 × GOMAXPROCS, upgradesPerCore: an upgrade waiting on Redis or
	// MariaDB leaves its core to another]. A node whose upgrades wait on
	// nothing (the zero-setup node: its SQL is in process) sets
	// GOMAXPROCS: more at once only puts its chats' sends and deliveries
	// behind them in the scheduler, which in a storm is lag enough to
	// refuse sends as busy (docs/BENCHMARKS.md, "Connection storms").
	Upgrades int
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Workers, 64)
	def(&c.Upgrades, upgradesPerCore*runtime.GOMAXPROCS(0))
	def(&c.WriteQueueBytes, 1<<20)
	def(&c.SendBurst, 40)
	def(&c.RecentLen, 1000)
	def(&c.SyncLimit, 500)
	defDur(&c.WriteTimeout, 10*time.Second)
	defDur(&c.PingInterval, 30*time.Second)
	defDur(&c.IdleTimeout, 75*time.Second)
	defDur(&c.ProbeInterval, 5*time.Second)
	defDur(&c.TokenCheck, time.Minute)
	defDur(&c.BusyLag, 250*time.Millisecond)
	if c.SendRate <= 0 {
		c.SendRate = 20
	}
}

// Directory answers what the hub needs from SQL, once per connection.
type Directory interface {
	DisplayName(ctx context.Context, userID int64) (string, error)
	RoomIDs(ctx context.Context, userID int64) ([]int64, error)
	// IsAdmin reports whether the user may manage the room (owner or admin).
	IsAdmin(ctx context.Context, roomID, userID int64) (bool, error)
	// MemberIDsByUsername lists the members of a room with these
	// (lower-case) usernames, for @mentions.
	MemberIDsByUsername(ctx context.Context, roomID int64, usernames []string) ([]int64, error)
	// MemberIDs lists a room's members to one of them (an api error for
	// anyone else).
	MemberIDs(ctx context.Context, roomID, viewerID int64) ([]int64, error)
	// CheckToken reads afresh whether token still authenticates its user:
	// nil, or a 401 api error once it is revoked or expired or its user
	// is gone.
	CheckToken(ctx context.Context, token string) error
}

// History is the durable message store, for what the broker no longer
// holds.
type History interface {
	// After is oldest first, Before and Search newest first; every entry
	// is an encoded msg event, deleted ones as tombstones.
	After(ctx context.Context, room, seq int64, limit int) ([][]byte, error)
	Before(ctx context.Context, room, seq int64, limit int) ([][]byte, error)
	Search(ctx context.Context, room int64, q string, limit int) ([][]byte, error)
	// Gaps are the recorded gaps of room overlapping seqs from..to.
	Gaps(ctx context.Context, room, from, to int64) ([]chatlog.Gap, error)
}

// Attachments finds the uploads members attach to messages.
type Attachments interface {
	// Attachment is the metadata of upload id when user uploaded it to
	// room; an api error (validation) when not.
	Attachment(ctx context.Context, id string, room, user int64) (*chatlog.Attachment, error)
}

// Hub owns this node's WebSocket connections.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	broker  Broker
	dir     Directory
	history History
	// files is nil until UseAttachments; messages then carry none.
	files   Attachments
	metrics *metrics
	adm     *admission
	gather  *gatherer
	// ringless logs once that io_uring could not be set up.
	ringless sync.Once
	// parked are acks waiting to go out with their msg (ack.go).
	parked parkedAcks
	// upgrades bounds the WebSocket upgrades in progress.
	upgrades upgradeGate
	poller   *poller
	nextID   atomic.Uint64
	// live keeps the broker subscribed to the rooms in rooms, off mu.
	live *liveRooms

	mu    sync.RWMutex
	conns map[*Conn]struct{}
	users map[int64]*local
	rooms map[int64]map[*Conn]struct{}
	// pending journals membership changes of users whose upgrade is in
	// flight (expect).
	pending map[int64]*pendingUser
	// tokensChanged is when each user's tokens last changed, as heard in
	// the last tokenChangeMemory (tokenChanged).
	tokensChanged map[int64]time.Time

	// onAccept hears of every newly accepted message (OnAccept).
	onAccept func(d *chatlog.Draft, seq int64)

	scratch sync.Pool
	stop    context.CancelFunc
	// done counts the broker's delivery goroutines, keepalive, admission
	// and the gatherer.
	done sync.WaitGroup
	// announcing counts presence updates still running, so Close waits
	// for the last goodbyes before Redis goes away; annMu orders each Add
	// before that Wait (closed stops new ones).
	announcing sync.WaitGroup
	annMu      sync.Mutex
	annClosed  bool
}

// local is one user's connections on this node and the rooms they are in.
type local struct {
	conns map[*Conn]struct{}
	rooms map[int64]struct{}
}

// New starts a hub on broker: its poller, workers and deliveries. history
// is the durable message store, for what the broker no longer holds.
func New(cfg Config, broker Broker, dir Directory, history History, reg prometheus.Registerer, log *slog.Logger) (*Hub, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = broker.workers()
	}
	cfg.defaults()
	ctx, stop := context.WithCancel(context.Background())
	h := &Hub{
		cfg: cfg, log: log, dir: dir, history: history,
		broker:   broker,
		metrics:  newMetrics(reg),
		adm:      newAdmission(cfg.BusyLag, reg),
		upgrades: make(upgradeGate, cfg.Upgrades),
		conns:    map[*Conn]struct{}{},
		users:    map[int64]*local{},
		rooms:    map[int64]map[*Conn]struct{}{},
		pending:  map[int64]*pendingUser{},
		live:     newLiveRooms(broker, log),
		stop:     stop,

		tokensChanged: map[int64]time.Time{},
	}
	h.gather = newGatherer(h.adm)
	h.scratch.New = func() any { b := make([]byte, MaxMessage+maxHeader); return &b }
	broker.register(reg)
	if err := broker.start(ctx, h); err != nil {
		stop()
		return nil, err
	}
	var here func(c *Conn) bool
	if _, ok := broker.(pipeliner); ok {
		here = h.handleHere
	}
	p, err := newPoller(cfg.Workers, h.handle, here)
	if err != nil {
		stop()
		broker.close()
		return nil, err
	}
	h.poller = p
	h.done.Add(4)
	go h.keepalive(ctx)
	go func() {
		defer h.done.Done()
		h.live.run(ctx)
	}()
	go func() {
		defer h.done.Done()
		h.adm.run(ctx)
	}()
	go func() {
		defer h.done.Done()
		h.gather.run(ctx)
	}()
	return h, nil
}

// UseAttachments lets messages carry uploads found in files; call it
// before the hub serves.
func (h *Hub) UseAttachments(files Attachments) { h.files = files }

// attach adds upload id to a draft; an error is the reason to refuse it.
func (h *Hub) attach(ctx context.Context, d *chatlog.Draft, id string) error {
	if id == "" {
		return nil
	}
	if h.files == nil {
		return api.Validation("this node takes no attachments")
	}
	a, err := h.files.Attachment(ctx, id, d.Room, d.From)
	if err != nil {
		return err
	}
	d.WithAttachment(a)
	return nil
}

// Close sends 1001 to every client, closes them and stops the hub.
func (h *Hub) Close() {
	h.mu.RLock()
	all := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		all = append(all, c)
	}
	h.mu.RUnlock()
	for _, c := range all {
		h.closeConn(c, ws.StatusGoingAway, "node shutting down")
	}
	h.annMu.Lock()
	h.annClosed = true
	h.annMu.Unlock()
	h.announcing.Wait()
	h.stop()
	h.broker.close()
	h.poller.close()
	h.done.Wait()
}

// pendingUser is what a user's upgrades in flight must apply over the
// rooms they read from SQL: a kick that commits after that read is
// announced before the connection registers, when the node has no entry
// of the user to apply it to.
type pendingUser struct {
	upgrades int
	// changes is the last change heard per room: true joined.
	changes map[int64]bool
}

// expect starts journaling user's membership changes; call it before an
// upgrade reads the user's rooms, and the returned func once the
// connection is registered (or failed).
func (h *Hub) expect(user int64) (done func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pending[user]
	if p == nil {
		p = &pendingUser{changes: map[int64]bool{}}
		h.pending[user] = p
	}
	p.upgrades++
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if p.upgrades--; p.upgrades == 0 {
			delete(h.pending, user)
		}
	}
}

// register adds an upgraded connection to the hub's maps and returns
// the joins of its rooms not yet delivered here, to wait for before its
// frames are read (liveRooms subscribes them, off h.mu). first reports
// the user's first connection on this node. roomIDs were read after
// expect; the changes heard since then are applied over them.
func (h *Hub) register(c *Conn, roomIDs []int64) (first bool, joins []*join) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns[c] = struct{}{}
	u := h.users[c.user]
	if first = u == nil; first {
		u = &local{conns: map[*Conn]struct{}{}, rooms: map[int64]struct{}{}}
		for _, r := range roomIDs {
			u.rooms[r] = struct{}{}
		}
		if p := h.pending[c.user]; p != nil {
			for r, joined := range p.changes {
				if joined {
					u.rooms[r] = struct{}{}
				} else {
					delete(u.rooms, r)
				}
			}
		}
		h.users[c.user] = u
	}
	u.conns[c] = struct{}{}
	for r := range u.rooms {
		h.addToRoom(r, c)
		// Also a room that had members: its subscription may still be on
		// its way.
		if j := h.live.need(r); j != nil {
			joins = append(joins, j)
		}
	}
	h.metrics.connections.Inc()
	return first, joins
}

// addToRoom reports whether the room had no local connection before.
func (h *Hub) addToRoom(room int64, c *Conn) bool {
	set := h.rooms[room]
	if set == nil {
		set = map[*Conn]struct{}{}
		h.rooms[room] = set
	}
	set[c] = struct{}{}
	return len(set) == 1
}

// removeFromRoom reports whether the room has no local connection left.
func (h *Hub) removeFromRoom(room int64, c *Conn) bool {
	set := h.rooms[room]
	if set == nil {
		return false
	}
	delete(set, c)
	if len(set) == 0 {
		delete(h.rooms, room)
		return true
	}
	return false
}

func (h *Hub) unregister(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c]; !ok {
		return
	}
	delete(h.conns, c)
	h.metrics.connections.Dec()
	u := h.users[c.user]
	if u == nil {
		return
	}
	delete(u.conns, c)
	for r := range u.rooms {
		if h.removeFromRoom(r, c) {
			h.live.drop(r)
		}
	}
	if len(u.conns) == 0 {
		delete(h.users, c.user)
		h.annMu.Lock()
		if !h.annClosed {
			h.announcing.Add(1)
			go func() {
				defer h.announcing.Done()
				h.announce(c.user, false, u.rooms)
			}()
		}
		h.annMu.Unlock()
	}
}

// announce records a user's presence on this node and, when that flips
// the user's global presence, tells the rooms they are in.
func (h *Hub) announce(user int64, online bool, rooms map[int64]struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	flipped, err := h.broker.setOnline(ctx, h.cfg.NodeID, user, online)
	if err != nil {
		h.log.Warn("presence", "user", user, "err", err)
		return
	}
	if !flipped {
		return
	}
	ids := make([]int64, 0, len(rooms))
	for r := range rooms {
		ids = append(ids, r)
	}
	if err := h.broker.publishAll(ctx, ids, encode(presenceEvent{Type: "presence", User: user, Online: online})); err != nil {
		h.log.Warn("presence", "user", user, "err", err)
	}
}

// isMember answers from this node's view of the user's rooms, which the
// membership channel keeps current.
func (h *Hub) isMember(user, room int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	u := h.users[user]
	if u == nil {
		return false
	}
	_, ok := u.rooms[room]
	return ok
}

// MembershipChanged tells every node that users joined or left a room, so
// nodes with their connections start or stop delivering it to them.
func (h *Hub) MembershipChanged(ctx context.Context, room int64, users []int64, joined bool) {
	payload := encode(membershipEvent{Room: room, Users: users, Joined: joined})
	if err := h.broker.publishMembership(ctx, payload); err != nil {
		h.log.Warn("publish membership change", "room", room, "err", err)
	}
}

func (h *Hub) applyMembership(ev membershipEvent) {
	// Sockets of removed members are told, after h.mu is released (a
	// failed write drops the connection, which takes h.mu).
	var removed []*Conn
	defer func() {
		for _, c := range removed {
			c.write(textFrame(encode(removedEvent{Type: "removed", Room: ev.Room})))
		}
	}()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, uid := range ev.Users {
		if p := h.pending[uid]; p != nil {
			p.changes[ev.Room] = ev.Joined
		}
		u := h.users[uid]
		if u == nil {
			continue
		}
		if _, in := u.rooms[ev.Room]; in == ev.Joined {
			continue
		}
		if ev.Joined {
			u.rooms[ev.Room] = struct{}{}
		} else {
			delete(u.rooms, ev.Room)
		}
		for c := range u.conns {
			if ev.Joined && h.addToRoom(ev.Room, c) {
				h.live.need(ev.Room) // nobody waits: a sync fills the gap
			}
			if !ev.Joined {
				removed = append(removed, c)
				if h.removeFromRoom(ev.Room, c) {
					h.live.drop(ev.Room)
				}
			}
		}
	}
}

// membershipEvent applies a membership change another node (or this
// one) published.
func (h *Hub) membershipEvent(payload []byte) {
	var ev membershipEvent
	switch {
	case json.Unmarshal(payload, &ev) != nil:
	case ev.Event != nil:
		h.deliverToUsers(ev.Users, ev.Event)
	case ev.Recheck:
		h.tokenChanged(ev.Users)
		go h.recheck(ev.Users) // SQL must not hold up the channel
	default:
		h.applyMembership(ev)
	}
}

var (
	tsField   = []byte(`"ts":`)
	msgPrefix = []byte(`{"type":"msg"`)
)

func acceptedAt(payload []byte) int64 { return intField(payload, tsField) }

// intField reads the first integer after field (`"seq":`) in an encoded
// event without decoding all of it; 0 when absent.
func intField(payload, field []byte) int64 {
	i := bytes.Index(payload, field)
	if i < 0 {
		return 0
	}
	rest := payload[i+len(field):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, _ := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n
}

// keepalive pings every connection and closes the silent ones.
func (h *Hub) keepalive(ctx context.Context) {
	defer h.done.Done()
	t := time.NewTicker(h.cfg.PingInterval)
	defer t.Stop()
	beat := time.NewTicker(presenceTTL / 3)
	defer beat.Stop()
	tokens := time.NewTicker(h.cfg.TokenCheck)
	defer tokens.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tokens.C:
			h.recheck(nil)
		case <-beat.C:
			h.mu.RLock()
			users := make([]int64, 0, len(h.users))
			for u := range h.users {
				users = append(users, u)
			}
			h.mu.RUnlock()
			if err := h.broker.heartbeat(ctx, h.cfg.NodeID, users); err != nil {
				h.log.Warn("presence heartbeat", "err", err)
			}
		case now := <-t.C:
			h.mu.RLock()
			all := make([]*Conn, 0, len(h.conns))
			for c := range h.conns {
				all = append(all, c)
			}
			h.mu.RUnlock()
			for _, c := range all {
				quiet := now.Sub(time.Unix(0, c.lastRead.Load()))
				switch {
				case quiet > h.cfg.IdleTimeout:
					h.closeConn(c, ws.StatusGoingAway, "idle timeout")
				case quiet >= h.cfg.PingInterval:
					// A client heard from within the interval is alive;
					// pinging it too would cost a write and a read each.
					c.write(pingFrame)
				}
			}
		}
	}
}

// watch hands c to the poller unless it was closed already (a failed
// first write): adding a closed descriptor could register whichever new
// connection reused its number under c's id.
func (h *Hub) watch(c *Conn) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	return h.poller.add(c)
}

// closeConn sends a close frame with code, after any frames c holds,
// and closes the socket.
func (h *Hub) closeConn(c *Conn, code ws.StatusCode, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if !c.flushing {
		// What c holds goes first, as it would have without the gatherer,
		// and acks parked for their msg (ack.go); past one writev's
		// buffers only the close frame goes, and the client's sync after
		// reconnecting fetches the rest (a send whose ack is lost is
		// resent with its cid and acked again).
		out := c.held
		for _, p := range c.sends {
			if p.ack != nil {
				out = append(out, p.ack)
			}
		}
		out = append(out, closeFrame(code, reason))
		if len(out) > iovMax {
			out = out[len(out)-1:]
		}
		_, _ = c.writevNow(out)
		c.held = nil
	}
	c.mu.Unlock()
	h.finish(c)
}

// drop closes a connection whose socket failed.
func (h *Hub) drop(c *Conn, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	h.log.Debug("connection dropped", "user", c.user, "err", err)
	h.finish(c)
}

func (h *Hub) finish(c *Conn) {
	h.poller.remove(c)
	_ = c.tcp.Close()
	h.unregister(c)
}

// Healthy fails while deliveries are known to be stalled (a Redis
// pub/sub shard whose probe has not come back for three intervals), for
// /readyz.
func (h *Hub) Healthy() error { return h.broker.healthy() }

// Connections is how many WebSocket connections this node holds.
func (h *Hub) Connections() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}
