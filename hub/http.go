package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gofiber/fiber/v2"

	"moim/api"
	"moim/chatlog"
)

// Gate is the first of GET /ws's handlers after the cheap refusals (the
// connection cap, the per-address limit): it takes one of the node's
// upgrade slots (upgradeGate) before any of the upgrade's work, checking
// the token included, and gives it back when the request ends, unless
// Handler took the upgrade over.
func (h *Hub) Gate() fiber.Handler {
	return func(c *fiber.Ctx) error {
		leave, err := h.upgrades.enter(c.UserContext(), c)
		if err != nil {
			return err
		}
		s := &upgradeSlot{leave: leave}
		c.Locals(upgradeSlotKey{}, s)
		err = c.Next()
		if !s.handedOff {
			leave()
		}
		return err
	}
}

// upgradeSlot is a slot of the gate, which Handler takes over once it
// hijacks the connection: the slot is given back when the connection has
// joined its rooms.
type upgradeSlot struct {
	leave     func()
	handedOff bool
}

type upgradeSlotKey struct{}

// Handler upgrades GET /ws. It runs after Gate and the token middleware,
// so a bad or missing token is a 401 before any WebSocket exists; userID
// reads the authenticated caller and token what they authenticated with,
// checked again when their tokens change.
func (h *Hub) Handler(userID func(*fiber.Ctx) int64, token func(*fiber.Ctx) string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		slot, ok := c.Locals(upgradeSlotKey{}).(*upgradeSlot)
		if !ok {
			return errors.New("hub: GET /ws is served without Gate before Handler")
		}
		if !strings.EqualFold(c.Get(fiber.HeaderUpgrade), "websocket") {
			return api.BadRequest("expected a WebSocket upgrade (Upgrade: websocket)")
		}
		if !h.originAllowed(c.Get(fiber.HeaderOrigin), string(c.Request().Host())) {
			return api.Forbidden("origin not allowed")
		}
		uid, tok := userID(c), token(c)
		ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
		defer cancel()
		name, err := h.dir.DisplayName(ctx, uid)
		if err != nil {
			return err
		}
		// Changes announced from here on are applied over the rooms read
		// next, so a kick committing in between sticks.
		done := h.expect(uid)
		roomIDs, err := h.dir.RoomIDs(ctx, uid)
		if err != nil {
			done()
			return err
		}
		// gobwas/ws performs the handshake on the raw connection, from the
		// request bytes fasthttp already read.
		req := append([]byte(nil), c.Request().Header.Header()...)
		slot.handedOff = true
		c.Context().HijackSetNoResponse(true)
		c.Context().Hijack(func(nc net.Conn) {
			defer done()
			h.upgrade(nc, req, uid, tok, name, roomIDs, slot.leave)
		})
		return nil
	}
}

func (h *Hub) originAllowed(origin, host string) bool {
	if origin == "" || h.cfg.AnyOrigin {
		return true // not a browser, or any origin allowed
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if len(h.cfg.AllowedOrigins) == 0 {
		return strings.EqualFold(u.Host, host)
	}
	for _, o := range h.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// unwrapper is fasthttp's hijacked connection, which wraps the socket.
type unwrapper interface{ UnsafeConn() net.Conn }

// upgrade calls leave once the connection has joined its rooms (or
// failed to), before it starts reading frames.
func (h *Hub) upgrade(nc net.Conn, req []byte, uid int64, token, name string, roomIDs []int64, leave func()) {
	leave = sync.OnceFunc(leave)
	defer leave()
	conn := nc
	if u, ok := nc.(unwrapper); ok {
		conn = u.UnsafeConn()
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		h.log.Error("websocket over a non-TCP connection", "type", fmt.Sprintf("%T", conn))
		_ = nc.Close()
		return
	}
	rw := struct {
		io.Reader
		io.Writer
	}{io.MultiReader(bytes.NewReader(req), tcp), tcp}
	_ = tcp.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := (ws.Upgrader{}).Upgrade(rw); err != nil {
		h.log.Debug("websocket handshake failed", "err", err)
		_ = tcp.Close()
		return
	}
	_ = tcp.SetDeadline(time.Time{})
	c, err := h.newConn(tcp, uid, name)
	if err != nil {
		_ = tcp.Close()
		return
	}
	c.token = token
	// "ready" goes out before the connection joins its rooms, so it is the
	// first frame; what is published in between reaches the client through
	// the sync it sends after "ready", which is read only once the broker
	// confirmed the join.
	c.write(textFrame(encode(readyEvent{Type: "ready", User: uid, Node: h.cfg.NodeID})))
	first, joins := h.register(c, roomIDs)
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	err = wait(ctx, joins)
	cancel()
	if err != nil {
		h.log.Warn("subscribe on connect", "user", uid, "err", err)
		h.closeConn(c, ws.StatusInternalServerError, "could not join your rooms; reconnect")
		return
	}
	if first {
		rooms := make(map[int64]struct{}, len(roomIDs))
		for _, r := range roomIDs {
			rooms[r] = struct{}{}
		}
		h.announce(uid, true, rooms)
	}
	if h.tokenChangedLately(uid) {
		go h.recheck([]int64{uid})
	}
	leave()
	if err := h.watch(c); err != nil {
		h.drop(c, err)
	}
}

// PresenceHandler serves GET /api/rooms/:id/presence: which members are
// online on any node, and how far each has read (what a client opening
// the room needs for "read by N" before any read event arrives).
func (h *Hub) PresenceHandler(userID func(*fiber.Ctx) int64) fiber.Handler {
	return func(c *fiber.Ctx) error {
		room, err := api.ParamID(c, "id")
		if err != nil {
			return err
		}
		ids, err := h.dir.MemberIDs(c.UserContext(), room, userID(c))
		if err != nil {
			return err
		}
		online, err := h.broker.online(c.UserContext(), ids)
		if err != nil {
			return err
		}
		reads, err := h.broker.readPositions(c.UserContext(), room)
		if err != nil {
			return err
		}
		type member struct {
			UserID int64 `json:"user_id"`
			Online bool  `json:"online"`
			Read   int64 `json:"read"`
		}
		out := make([]member, len(ids))
		for i, id := range ids {
			out[i] = member{id, online[id], reads[id]}
		}
		return c.JSON(fiber.Map{"members": out})
	}
}

// Activity is, for each of roomIDs, its newest seq, how far user has read,
// its newest message and how many unread messages mention user: what a
// room list shows.
func (h *Hub) Activity(ctx context.Context, roomIDs []int64, user int64) (map[int64]chatlog.Activity, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	act, err := h.broker.activity(ctx, roomIDs, user)
	if err != nil {
		return nil, err
	}
	for room, a := range act {
		if a.Seq <= a.Read {
			continue
		}
		if a.Mentions, err = h.unreadMentions(ctx, room, user, a.Read, a.Seq); err != nil {
			return nil, err
		}
		act[room] = a
	}
	return act, nil
}

// IsMember checks the broker's copy of membership (the REST paths use
// it; a connection uses its node's view).
func (h *Hub) IsMember(ctx context.Context, room, user int64) (bool, error) {
	return h.broker.isMember(ctx, room, user)
}
