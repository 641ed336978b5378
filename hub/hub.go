// Package hub is Moim's real-time side: WebSocket connections owned by an
// epoll loop, the send path through one Redis script, and fan-out of room
// events to local connections, framed once per node.
package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"moim/rooms"
)

// Config tunes a hub. Zero fields take the defaults in brackets.
type Config struct {
	// NodeID is sent to clients in "ready".
	NodeID string
	// Workers read and handle frames of readable connections [64]. They
	// wait on Redis for each send, so there are more than cores.
	Workers int
	// WriteQueueBytes is how much may wait for a slow client before it is
	// closed with 1013 [1 MiB, about 3,000 chat messages].
	WriteQueueBytes int
	// WriteTimeout bounds a blocked write to a slow client [10s].
	WriteTimeout time.Duration
	// PingInterval is how often the server pings [30s]; IdleTimeout closes
	// a connection silent for that long [75s, two missed pings and slack].
	PingInterval, IdleTimeout time.Duration
	// SendRate and SendBurst are each connection's token bucket for
	// send and typing [20/s, burst 40].
	SendRate  float64
	SendBurst int
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
	def(&c.WriteQueueBytes, 1<<20)
	def(&c.SendBurst, 40)
	def(&c.RecentLen, 1000)
	def(&c.SyncLimit, 500)
	defDur(&c.WriteTimeout, 10*time.Second)
	defDur(&c.PingInterval, 30*time.Second)
	defDur(&c.IdleTimeout, 75*time.Second)
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
	// MemberIDs lists a room's members to one of them (an api error for
	// anyone else).
	MemberIDs(ctx context.Context, roomID, viewerID int64) ([]int64, error)
}

// History is the durable message store, for sync older than the recent
// stream and for restoring a lost seq counter.
type History interface {
	// After is oldest first, Before and Search newest first; every entry
	// is an encoded msg event.
	After(ctx context.Context, room, seq int64, limit int) ([][]byte, error)
	Before(ctx context.Context, room, seq int64, limit int) ([][]byte, error)
	Search(ctx context.Context, room int64, q string, limit int) ([][]byte, error)
	MaxSeq(ctx context.Context, room int64) (int64, error)
}

// Hub owns this node's WebSocket connections.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	broker  *Broker
	dir     Directory
	history History
	metrics *metrics
	poller  *poller
	nextID  atomic.Uint64

	mu    sync.RWMutex
	conns map[*Conn]struct{}
	users map[int64]*local
	rooms map[int64]map[*Conn]struct{}

	fanout  []chan event
	scratch sync.Pool
	stop    context.CancelFunc
	done    sync.WaitGroup
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

// event is a room's pub/sub payload on its way to local connections.
type event struct {
	room    int64
	payload []byte
}

// New starts a hub: its poller, workers, fan-out and Redis subscription.
// history may be nil until the message store exists.
func New(cfg Config, rdb redis.UniversalClient, keys rooms.Keys, dir Directory, history History, reg prometheus.Registerer, log *slog.Logger) (*Hub, error) {
	cfg.defaults()
	ctx, stop := context.WithCancel(context.Background())
	h := &Hub{
		cfg: cfg, log: log, dir: dir, history: history,
		broker:  newBroker(rdb, keys, cfg.RecentLen),
		metrics: newMetrics(reg),
		conns:   map[*Conn]struct{}{},
		users:   map[int64]*local{},
		rooms:   map[int64]map[*Conn]struct{}{},
		stop:    stop,
	}
	h.scratch.New = func() any { b := make([]byte, MaxMessage+maxHeader); return &b }
	h.broker.startPipeline(ctx, 2)
	if err := h.broker.subscribe(ctx); err != nil {
		stop()
		return nil, err
	}
	p, err := newPoller(cfg.Workers, h.handle)
	if err != nil {
		stop()
		_ = h.broker.ps.Close()
		return nil, err
	}
	h.poller = p
	h.fanout = make([]chan event, runtime.GOMAXPROCS(0))
	for i := range h.fanout {
		h.fanout[i] = make(chan event, 1024)
		h.done.Add(1)
		go h.deliver(h.fanout[i])
	}
	h.done.Add(2)
	go h.receive(ctx)
	go h.keepalive(ctx)
	return h, nil
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
	_ = h.broker.ps.Close()
	h.poller.close()
	h.done.Wait()
}

// register adds an upgraded connection to the hub's maps and subscribes
// the rooms that had no local member before. first reports the user's
// first connection on this node.
func (h *Hub) register(c *Conn, roomIDs []int64) (first bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns[c] = struct{}{}
	u := h.users[c.user]
	if first = u == nil; first {
		u = &local{conns: map[*Conn]struct{}{}, rooms: map[int64]struct{}{}}
		for _, r := range roomIDs {
			u.rooms[r] = struct{}{}
		}
		h.users[c.user] = u
	}
	u.conns[c] = struct{}{}
	var fresh []int64
	for r := range u.rooms {
		if h.addToRoom(r, c) {
			fresh = append(fresh, r)
		}
	}
	h.metrics.connections.Inc()
	if len(fresh) == 0 {
		return first, nil
	}
	// Subscribing under h.mu keeps (un)subscribe commands in the order of
	// the map changes that caused them.
	return first, h.broker.subscribeRooms(context.Background(), fresh...)
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
	var empty []int64
	for r := range u.rooms {
		if h.removeFromRoom(r, c) {
			empty = append(empty, r)
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
	if len(empty) > 0 {
		if err := h.broker.unsubscribeRooms(context.Background(), empty...); err != nil {
			h.log.Warn("unsubscribe", "rooms", len(empty), "err", err)
		}
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
	if err := h.broker.PublishAll(ctx, ids, encode(presenceEvent{Type: "presence", User: user, Online: online})); err != nil {
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
	if err := h.broker.rdb.Publish(ctx, h.broker.keys.MembershipChannel(), payload).Err(); err != nil {
		h.log.Warn("publish membership change", "room", room, "err", err)
	}
}

func (h *Hub) applyMembership(ev membershipEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var sub, unsub []int64
	for _, uid := range ev.Users {
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
				sub = append(sub, ev.Room)
			}
			if !ev.Joined && h.removeFromRoom(ev.Room, c) {
				unsub = append(unsub, ev.Room)
			}
		}
	}
	ctx := context.Background()
	if len(sub) > 0 {
		if err := h.broker.subscribeRooms(ctx, sub...); err != nil {
			h.log.Warn("subscribe", "room", ev.Room, "err", err)
		}
	}
	if len(unsub) > 0 {
		if err := h.broker.unsubscribeRooms(ctx, unsub...); err != nil {
			h.log.Warn("unsubscribe", "room", ev.Room, "err", err)
		}
	}
}

// receive reads the node's pub/sub connection and hands room events to
// the fan-out worker that owns the room, so each room stays in order.
func (h *Hub) receive(ctx context.Context) {
	defer h.done.Done()
	defer func() {
		for _, ch := range h.fanout {
			close(ch)
		}
	}()
	membership := h.broker.keys.MembershipChannel()
	for {
		msg, err := h.broker.ps.ReceiveMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			h.log.Warn("pub/sub receive", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if msg.Channel == membership {
			var ev membershipEvent
			if json.Unmarshal([]byte(msg.Payload), &ev) == nil {
				h.applyMembership(ev)
			}
			continue
		}
		room, ok := roomOf(msg.Channel)
		if !ok {
			continue
		}
		h.fanout[uint64(room)%uint64(len(h.fanout))] <- event{room: room, payload: []byte(msg.Payload)}
	}
}

var tsField = []byte(`"ts":`)

// deliver frames each event once and writes the same bytes to every local
// connection in the room.
func (h *Hub) deliver(events <-chan event) {
	defer h.done.Done()
	var targets []*Conn
	for ev := range events {
		frame := textFrame(ev.payload)
		h.mu.RLock()
		targets = targets[:0]
		for c := range h.rooms[ev.room] {
			targets = append(targets, c)
		}
		h.mu.RUnlock()
		for _, c := range targets {
			c.write(frame)
		}
		h.metrics.framesOut.Add(float64(len(targets)))
		if bytes.HasPrefix(ev.payload, []byte(`{"type":"msg"`)) {
			h.metrics.deliveries.Add(float64(len(targets)))
			if ts := acceptedAt(ev.payload); ts > 0 {
				h.metrics.latency.Observe(time.Since(time.UnixMilli(ts)).Seconds())
			}
		}
	}
}

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
	for {
		select {
		case <-ctx.Done():
			return
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
				if now.Sub(time.Unix(0, c.lastRead.Load())) > h.cfg.IdleTimeout {
					h.closeConn(c, ws.StatusGoingAway, "idle timeout")
					continue
				}
				c.write(pingFrame)
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

// closeConn sends a close frame with code and closes the socket.
func (h *Hub) closeConn(c *Conn, code ws.StatusCode, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if !c.flushing {
		_, _ = c.writeNow(closeFrame(code, reason))
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

// handle runs on a worker when c is readable: it reads what arrived,
// handles every complete frame, keeps a partial one, and re-arms c.
func (h *Hub) handle(c *Conn) {
	c.readMu.Lock()
	if h.readFrames(c) {
		c.readMu.Unlock()
		h.rearm(c)
		return
	}
	c.readMu.Unlock()
}

// readFrames handles what is readable on c and reports whether c stays open.
func (h *Hub) readFrames(c *Conn) bool {
	bp := h.scratch.Get().(*[]byte)
	defer h.scratch.Put(bp)
	buf := *bp
	n, err := c.readSome(buf)
	switch {
	case err == errWouldBlock:
		return true
	case err != nil || n == 0:
		h.drop(c, err)
		return false
	}
	data := buf[:n]
	if c.pending != nil {
		data = append(c.pending, data...)
		c.pending = nil
	}
	for {
		hd, payload, used, err := parseFrame(data)
		if err == errIncomplete {
			break
		}
		var ce *closeError
		if errors.As(err, &ce) {
			h.closeConn(c, ce.code, ce.reason)
			return false
		}
		data = data[used:]
		c.lastRead.Store(time.Now().UnixNano())
		h.metrics.framesIn.Inc()
		if !h.frame(c, hd, payload) {
			return false
		}
	}
	if len(data) > 0 {
		c.pending = append([]byte(nil), data...)
	}
	return true
}

func (h *Hub) rearm(c *Conn) {
	if err := h.poller.rearm(c); err != nil {
		h.drop(c, err)
	}
}

// frame handles one frame; false means the connection was closed.
func (h *Hub) frame(c *Conn, hd ws.Header, payload []byte) bool {
	switch hd.OpCode {
	case ws.OpPing:
		c.write(compile(ws.OpPong, payload))
		return true
	case ws.OpPong:
		return true
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameData(payload)
		if !echoable(code) {
			code = ws.StatusNormalClosure
		}
		h.closeConn(c, code, "")
		return false
	case ws.OpBinary:
		h.closeConn(c, ws.StatusUnsupportedData, "binary frames are not supported; send JSON text")
		return false
	case ws.OpText:
		if c.inFrag {
			h.closeConn(c, ws.StatusProtocolError, "new message before the last one ended")
			return false
		}
		if !hd.Fin {
			c.inFrag = true
			c.message = append(c.message[:0], payload...)
			return true
		}
		return h.message(c, payload)
	case ws.OpContinuation:
		if !c.inFrag {
			h.closeConn(c, ws.StatusProtocolError, "continuation without a message")
			return false
		}
		if len(c.message)+len(payload) > MaxMessage {
			h.closeConn(c, ws.StatusMessageTooBig, "message larger than 64 KiB")
			return false
		}
		c.message = append(c.message, payload...)
		if !hd.Fin {
			return true
		}
		msg := c.message
		c.inFrag, c.message = false, nil
		return h.message(c, msg)
	}
	h.closeConn(c, ws.StatusProtocolError, "unknown opcode")
	return false
}

// message handles one complete text message.
func (h *Hub) message(c *Conn, msg []byte) bool {
	if !utf8.Valid(msg) {
		h.closeConn(c, ws.StatusInvalidFramePayloadData, "text is not valid UTF-8")
		return false
	}
	var in inbound
	if err := json.Unmarshal(msg, &in); err != nil {
		h.fail(c, "bad_request", "frame is not a protocol v1 JSON object", "", 0)
		return true
	}
	switch in.Type {
	case "send":
		h.send(c, &in)
	case "sync":
		h.sync(c, &in)
	case "read":
		h.read(c, &in)
	case "typing":
		h.typing(c, &in)
	case "delete":
		h.delete(c, &in)
	case "ping":
		c.write(pongEvent)
	default:
		h.fail(c, "bad_request", "unknown type "+strconv.Quote(in.Type), in.CID, 0)
	}
	return true
}

// echoable reports whether a client's close code may be sent back (RFC
// 6455 7.4: 1004–1006 and 1015 never travel in a close frame).
func echoable(code ws.StatusCode) bool {
	return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) || (code >= 3000 && code <= 4999)
}

var pongEvent = textFrame([]byte(`{"type":"pong"}`))

func (h *Hub) fail(c *Conn, code, message, cid string, room int64) {
	h.metrics.errors.WithLabelValues(code).Inc()
	c.write(textFrame(encode(errorEvent{Type: "error", Code: code, Message: message, CID: cid, Room: room})))
}

func (h *Hub) send(c *Conn, in *inbound) {
	switch {
	case in.Room <= 0:
		h.fail(c, "bad_request", "room must be a room id", in.CID, 0)
		return
	case !validCID(in.CID):
		h.fail(c, "bad_request", "cid must be 1 to 64 printable ASCII characters without ':'", in.CID, in.Room)
		return
	case !validBody(in.Body):
		h.fail(c, "bad_request", "body must be 1 to 4000 characters", in.CID, in.Room)
		return
	case in.ReplyTo < 0:
		h.fail(c, "bad_request", "reply_to must be a seq", in.CID, in.Room)
		return
	case !c.bucket.allow(time.Now(), h.cfg.SendRate, h.cfg.SendBurst):
		h.fail(c, "rate_limited", "sending too fast; slow down", in.CID, in.Room)
		return
	}
	d := draft(in.Room, c.user, c.name, in.Body, in.CID, KindText, in.ReplyTo, time.Now().UnixMilli())
	acc, err := h.accept(d)
	switch {
	case errors.Is(err, errNotMember):
		h.fail(c, "not_member", "you are not a member of this room", in.CID, in.Room)
	case err != nil:
		h.log.Warn("send failed", "room", in.Room, "err", err)
		h.fail(c, "unavailable", "message not stored; retry with the same cid", in.CID, in.Room)
	default:
		c.write(textFrame(encode(ackEvent{Type: "ack", CID: in.CID, Room: in.Room, Seq: acc.Seq, TS: acc.TS})))
	}
}

// accept stores a draft; a missing seq counter is restored from what is
// stored before trying once more.
func (h *Hub) accept(d *Draft) (Accepted, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	acc, err := h.broker.Accept(ctx, d)
	if errors.Is(err, errNoSeq) {
		var stored int64
		if h.history != nil {
			if stored, err = h.history.MaxSeq(ctx, d.Room); err != nil {
				return Accepted{}, fmt.Errorf("hub: highest stored seq of room %d: %w", d.Room, err)
			}
		}
		if err = h.broker.RestoreSeq(ctx, d.Room, stored); err != nil {
			return Accepted{}, err
		}
		acc, err = h.broker.Accept(ctx, d)
	}
	h.metrics.redisRTT.Observe(time.Since(start).Seconds())
	if err == nil && !acc.Dup {
		h.metrics.accepted.Inc()
	}
	return acc, err
}

// Post publishes a server-side message (kind system or fee) into a room
// through the same path as a member's message; idem makes retries safe and
// fee, when not nil, is carried as the message's structured "fee" field.
func (h *Hub) Post(ctx context.Context, room int64, kind, body, idem string, fee json.RawMessage) (int64, error) {
	d := draft(room, 0, "", body, idem, kind, 0, time.Now().UnixMilli())
	if fee != nil {
		d.Tail = append(d.Tail[:len(d.Tail)-1], `,"fee":`...)
		d.Tail = append(append(d.Tail, fee...), '}')
	}
	acc, err := h.accept(d)
	return acc.Seq, err
}

const maxSyncRooms = 200

func (h *Hub) sync(c *Conn, in *inbound) {
	if len(in.Rooms) == 0 || len(in.Rooms) > maxSyncRooms {
		h.fail(c, "bad_request", "rooms must map 1 to 200 room ids to the last seq seen", "", 0)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for key, after := range in.Rooms {
		room, err := strconv.ParseInt(key, 10, 64)
		if err != nil || room <= 0 || after < 0 {
			h.fail(c, "bad_request", "rooms must map room ids to seqs", "", 0)
			continue
		}
		if !h.isMember(c.user, room) {
			h.fail(c, "not_member", "you are not a member of this room", "", room)
			continue
		}
		msgs, err := h.After(ctx, room, after, h.cfg.SyncLimit)
		if err != nil {
			h.log.Warn("sync failed", "room", room, "err", err)
			h.fail(c, "unavailable", "sync failed; try again", "", room)
			continue
		}
		last := after
		for _, m := range msgs {
			c.write(textFrame(m))
		}
		if len(msgs) > 0 {
			last = seqOf(msgs[len(msgs)-1])
		}
		c.write(textFrame(encode(syncedEvent{Type: "synced", Room: room, Seq: last})))
	}
}

// After returns up to limit messages of room after seq, oldest first: the
// store's part older than the recent stream, then the recent stream, so a
// message is readable the moment it is acknowledged, stored or not.
func (h *Hub) After(ctx context.Context, room, after int64, limit int) ([][]byte, error) {
	recent, first, err := h.broker.Recent(ctx, room, after, limit)
	if err != nil {
		return nil, err
	}
	if recent, err = h.tombstones(ctx, room, recent); err != nil {
		return nil, err
	}
	if h.history == nil || (first > 0 && first <= after+1) {
		return recent, nil
	}
	older, err := h.history.After(ctx, room, after, limit)
	if err != nil {
		return nil, err
	}
	if first > 0 {
		for len(older) > 0 && seqOf(older[len(older)-1]) >= first {
			older = older[:len(older)-1]
		}
	}
	out := append(older, recent...)
	return out[:min(len(out), limit)], nil
}

// Before returns up to limit messages of room before seq (0: the newest),
// newest first, from the recent stream and then the store.
func (h *Hub) Before(ctx context.Context, room, before int64, limit int) ([][]byte, error) {
	recent, err := h.broker.RecentBefore(ctx, room, before, limit)
	if err != nil {
		return nil, err
	}
	if recent, err = h.tombstones(ctx, room, recent); err != nil {
		return nil, err
	}
	if len(recent) == limit || h.history == nil {
		return recent, nil
	}
	from := before
	if len(recent) > 0 {
		from = seqOf(recent[len(recent)-1])
	} else if from == 0 {
		from = 1 << 62
	}
	older, err := h.history.Before(ctx, room, from, limit-len(recent))
	if err != nil {
		return nil, err
	}
	return append(recent, older...), nil
}

// tombstones blanks the messages of a room that were deleted.
func (h *Hub) tombstones(ctx context.Context, room int64, msgs [][]byte) ([][]byte, error) {
	if len(msgs) == 0 {
		return msgs, nil
	}
	deleted, err := h.broker.deletedIn(ctx, room)
	if err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if deleted[seqOf(m)] {
			msgs[i] = rooms.Tombstone(m)
		}
	}
	return msgs, nil
}

var seqField = []byte(`"seq":`)

// seqOf reads the seq of an encoded msg.
func seqOf(msg []byte) int64 { return intField(msg, seqField) }

// roomSeq checks a frame that names a seq in one of the user's rooms;
// false means an error was sent.
func (h *Hub) roomSeq(c *Conn, in *inbound, what string) bool {
	if in.Room <= 0 || in.Seq <= 0 {
		h.fail(c, "bad_request", what+" needs a room and a seq", "", in.Room)
		return false
	}
	if !h.isMember(c.user, in.Room) {
		h.fail(c, "not_member", "you are not a member of this room", "", in.Room)
		return false
	}
	return true
}

func (h *Hub) read(c *Conn, in *inbound) {
	if !h.roomSeq(c, in, "read") {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	moved, err := h.broker.MarkRead(ctx, in.Room, c.user, in.Seq)
	if err == nil && moved {
		err = h.broker.Publish(ctx, in.Room, encode(readEvent{Type: "read", Room: in.Room, User: c.user, Seq: in.Seq}))
	}
	if err != nil {
		h.fail(c, "unavailable", "read receipt not stored; try again", "", in.Room)
	}
}

// delete tombstones a message: its author may, and so may room admins.
func (h *Hub) delete(c *Conn, in *inbound) {
	if !h.roomSeq(c, in, "delete") {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := h.find(ctx, in.Room, in.Seq)
	if err != nil {
		h.fail(c, "unavailable", "delete failed; try again", "", in.Room)
		return
	}
	if msg == nil {
		h.fail(c, "not_found", "no such message", "", in.Room)
		return
	}
	var m struct {
		From int64 `json:"from"`
	}
	_ = json.Unmarshal(msg, &m)
	if m.From != c.user {
		admin, err := h.dir.IsAdmin(ctx, in.Room, c.user)
		if err != nil {
			h.fail(c, "unavailable", "delete failed; try again", "", in.Room)
			return
		}
		if !admin {
			h.fail(c, "forbidden", "only the author or a room admin can delete a message", "", in.Room)
			return
		}
	}
	if _, err := h.broker.Delete(ctx, in.Room, in.Seq, c.user); err != nil {
		h.fail(c, "unavailable", "delete failed; try again", "", in.Room)
	}
}

// find reads one message from the recent stream, else from the store.
func (h *Hub) find(ctx context.Context, room, seq int64) ([]byte, error) {
	msg, err := h.broker.Message(ctx, room, seq)
	if err != nil || msg != nil || h.history == nil {
		return msg, err
	}
	msgs, err := h.history.After(ctx, room, seq-1, 1)
	if err != nil || len(msgs) == 0 || seqOf(msgs[0]) != seq {
		return nil, err
	}
	return msgs[0], nil
}

func (h *Hub) typing(c *Conn, in *inbound) {
	if !h.isMember(c.user, in.Room) {
		h.fail(c, "not_member", "you are not a member of this room", "", in.Room)
		return
	}
	if !c.bucket.allow(time.Now(), h.cfg.SendRate, h.cfg.SendBurst) {
		return // typing is best-effort; dropping it is the right throttle
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = h.broker.Publish(ctx, in.Room, encode(typingEvent{Type: "typing", Room: in.Room, User: c.user}))
}
