package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// maxFrame bounds a server frame the client accepts (the server's own
// limit is 64 KiB; a sync could be bigger, but the generator sends none).
const maxFrame = 1 << 20

// maxSeqIndex bounds the per-connection slice of delivery counts indexed
// by seq; rooms are fresh each run, so their seqs start at 1.
const maxSeqIndex = 1 << 22

// client is one user's WebSocket during a stage. Its reader (a loop or a
// goroutine of its own: stage.read) alone touches recv, extra, acks and
// maxSeen until the stage closes it;
// conn changes (a reconnect) under wmu.
type client struct {
	st     *stage
	acct   *account
	room   *room
	source net.IP // loopback source address to dial from; nil: the default
	home   int    // index of the -url this client dials first
	conn   net.Conn
	br     *bufio.Reader
	wmu    sync.Mutex // sender workers, pong replies and the reader share the socket
	// dead: not connected now, so the pacer skips the client
	dead atomic.Bool
	// dropped: a connection ended during the stage, not by the stage
	dropped atomic.Bool

	buf   []byte           // frame payload, reused
	frag  []byte           // a fragmented message being reassembled
	recv  []uint8          // deliveries per seq of the client's room
	extra map[int64]uint32 // deliveries of seqs beyond maxSeqIndex
	acks  []int64          // seqs the server acked to this client
	// maxSeen is the highest seq received on this connection outside a
	// sync, to tell live messages arriving out of order.
	maxSeen int64
	// ref is the reference client's state (-reconnect), else nil.
	ref *refState
	// cf is the connection's Centrifugo protocol state (-target
	// centrifugo), else nil.
	cf *cfState
	// readyAt is when the first connection's ready arrived (unix ns);
	// firstRecv and firstCID are its first storm probe's arrival and cid
	// (-storm, storm.go).
	readyAt, firstRecv int64
	firstCID           string
	// pongAt is when the answer to the ping sent after ready came.
	pongAt int64
}

// install makes conn the client's connection unless the stage is closing
// (then it closes conn and reports false).
func (c *client) install(conn net.Conn, br *bufio.Reader) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.st.closing.Load() {
		conn.Close()
		return false
	}
	c.conn, c.br = conn, br
	return true
}

var errFrameTooBig = errors.New("server frame larger than 1 MiB")

// frameHeader is a server frame's header (RFC 6455 5.2).
type frameHeader struct {
	fin    bool
	op     ws.OpCode
	masked bool
	mask   [4]byte
	size   uint64
}

// headerLen is the length of the header starting with b's two bytes.
func headerLen(b []byte) int {
	n := 2
	switch b[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// parseHeader reads the header at the start of b, which holds at least
// headerLen(b) bytes.
func parseHeader(b []byte) (h frameHeader, err error) {
	h.fin = b[0]&0x80 != 0
	h.op = ws.OpCode(b[0] & 0x0f)
	h.masked = b[1]&0x80 != 0
	h.size = uint64(b[1] & 0x7f)
	i := 2
	switch h.size {
	case 126:
		h.size, i = uint64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		h.size, i = binary.BigEndian.Uint64(b[2:10]), 10
	}
	if h.masked {
		copy(h.mask[:], b[i:i+4])
	}
	if h.size > maxFrame {
		err = errFrameTooBig
	}
	return h, err
}

// readFrame reads one server frame into *buf (unmasking it should the
// server mask it), without allocating once buf is big enough.
func readFrame(br *bufio.Reader, buf *[]byte) (fin bool, op ws.OpCode, payload []byte, err error) {
	b, err := br.Peek(2)
	if err != nil {
		return
	}
	if b, err = br.Peek(headerLen(b)); err != nil {
		return
	}
	h, err := parseHeader(b)
	if err != nil {
		return
	}
	_, _ = br.Discard(len(b))
	if uint64(cap(*buf)) < h.size {
		*buf = make([]byte, h.size, max(h.size, 512))
	}
	payload = (*buf)[:h.size]
	if _, err = io.ReadFull(br, payload); err != nil {
		return
	}
	if h.masked {
		ws.Cipher(payload, h.mask, 0)
	}
	return h.fin, h.op, payload, nil
}

// parseFrame reads the server frame at the start of b, unmasking it in
// place should the server mask it; n is the frame's length in b, 0 when b
// holds only part of it.
func parseFrame(b []byte) (fin bool, op ws.OpCode, payload []byte, n int, err error) {
	if len(b) < 2 {
		return
	}
	hl := headerLen(b)
	if len(b) < hl {
		return
	}
	h, err := parseHeader(b)
	if err != nil {
		return
	}
	if uint64(len(b)-hl) < h.size {
		return
	}
	payload = b[hl : hl+int(h.size)]
	if h.masked {
		ws.Cipher(payload, h.mask, 0)
	}
	return h.fin, h.op, payload, hl + int(h.size), nil
}

// appendClientFrame appends a masked client frame (RFC 6455 5.3) to dst.
func appendClientFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	dst = append(dst, 0x80|byte(op))
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// writeRaw writes a whole frame under the write lock.
func (c *client) writeRaw(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(frame)
	return err
}

// sendWarmup writes a room's warm-up message with cid.
func (c *client) sendWarmup(cid string) error {
	return c.writeRaw(appendClientFrame(nil, ws.OpText, c.st.lg.tgt.appendWarmup(nil, c, cid)))
}

// sender is one sender worker's scratch space.
type sender struct {
	cid     []byte
	body    []byte
	payload []byte
	frame   []byte
	pad     []byte
}

// send writes one chat message. The body carries the send time
// (appendBody); the cid carries it too, for the ack.
func (c *client) send(s *sender, n uint64) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	now := time.Now().UnixNano()
	s.cid = appendCID(s.cid[:0], now, n)
	mention := ""
	if f := c.st.o.mentions; f > 0 && rand.Float64() < f {
		if mention = c.mentionTarget(rand.Int()); mention != "" {
			c.st.mentionsSent.Add(1)
		}
	}
	s.body = appendMentionBody(s.body[:0], now, s.cid, mention, s.pad, c.st.o.bodySize)
	s.payload = c.st.lg.tgt.appendSend(s.payload[:0], c, s.cid, s.body)
	if c.ref != nil {
		c.ref.addPending(string(s.cid), bytes.Clone(s.payload))
	}
	s.frame = appendClientFrame(s.frame[:0], ws.OpText, s.payload)
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(s.frame)
	return err
}

// closedError is a close frame from the server.
type closedError struct {
	code   ws.StatusCode
	reason string
}

func (e *closedError) Error() string { return fmt.Sprintf("closed with %d %q", e.code, e.reason) }

// readLoop reads the client's frames on a goroutine of its own until the
// stage closes it (where no rxLoop can: see stage.read).
func (c *client) readLoop() {
	defer c.st.readers.Done()
	for c.ended(c.readConn()) {
	}
}

// ended handles the end of a connection's reading with err: counted
// unless the stage closed it and, with -reconnect, redialed. It reports
// whether a new connection is installed, to read in turn.
func (c *client) ended(err error) bool {
	c.dead.Store(true)
	if c.st.closing.Load() {
		return false
	}
	c.dropped.Store(true)
	if ce, ok := err.(*closedError); ok {
		key := fmt.Sprintf("closed_%d", ce.code)
		c.st.errs.add(key)
		c.st.logOnce(key, "user %s: server closed the connection with %d %q", c.acct.name, ce.code, ce.reason)
	} else {
		c.st.errs.add("conn_lost")
		c.st.logOnce("conn_lost", "user %s: connection lost: %v", c.acct.name, err)
	}
	return c.ref != nil && c.reconnect()
}

// readConn reads frames from the current connection until it ends.
func (c *client) readConn() error {
	var inFrag bool
	for {
		fin, op, payload, err := readFrame(c.br, &c.buf)
		if err != nil {
			return err
		}
		if err := c.onFrame(fin, op, payload, &inFrag); err != nil {
			return err
		}
	}
}

// onFrame handles one server frame; *inFrag says whether a fragmented
// message is being reassembled. A close frame ends the connection.
func (c *client) onFrame(fin bool, op ws.OpCode, payload []byte, inFrag *bool) error {
	switch op {
	case ws.OpPing:
		pong := appendClientFrame(nil, ws.OpPong, payload)
		if err := c.writeRaw(pong); err != nil && !c.st.closing.Load() {
			c.st.errs.add("write")
		}
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(payload)
		return &closedError{code, reason}
	case ws.OpText:
		if !fin {
			c.frag = append(c.frag[:0], payload...)
			*inFrag = true
			return nil
		}
		c.st.lg.tgt.handle(c, payload)
	case ws.OpContinuation:
		if !*inFrag {
			return nil
		}
		c.frag = append(c.frag, payload...)
		if fin {
			*inFrag = false
			c.st.lg.tgt.handle(c, c.frag)
		}
	}
	return nil
}

// frame is any server frame the generator reads.
type frame struct {
	Type    string `json:"type"`
	Room    int64  `json:"room"`
	Seq     int64  `json:"seq"`
	Body    string `json:"body"`
	CID     string `json:"cid"`
	User    int64  `json:"user"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfterMS is a busy or rate_limited refusal's wait.
	RetryAfterMS int64 `json:"retry_after_ms"`
	// From and To bound a gap frame's seqs.
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

var (
	msgPrefix   = []byte(`{"type":"msg","room":`)
	seqKey      = []byte(`,"seq":`)
	lgBodyKey   = []byte(`"body":"lg `)
	warmBodyKey = []byte(`"body":"` + warmBody)
	lgCIDStart  = "lg-"
	warmCID     = "wu-"
)

// warmBody starts the body of a warm-up message.
const warmBody = "loadgen warm-up"

// leadingInt parses the decimal digits at the start of b.
func leadingInt(b []byte) (v int64, n int) {
	for n < len(b) && b[n] >= '0' && b[n] <= '9' && n < 19 {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	return v, n
}

// parseMsg reads a msg frame the way the server encodes it (type, room,
// seq first) without decoding all of it. sent is 0 when the body is not
// the generator's, -1 for a warm-up message; cid is the generator's cid
// the body repeats (nil for other bodies).
func parseMsg(p []byte) (room, seq, sent int64, cid []byte, ok bool) {
	if !bytes.HasPrefix(p, msgPrefix) {
		return 0, 0, 0, nil, false
	}
	rest := p[len(msgPrefix):]
	room, n := leadingInt(rest)
	if n == 0 {
		return 0, 0, 0, nil, false
	}
	rest = rest[n:]
	if !bytes.HasPrefix(rest, seqKey) {
		return 0, 0, 0, nil, false
	}
	rest = rest[len(seqKey):]
	seq, n = leadingInt(rest)
	if n == 0 {
		return 0, 0, 0, nil, false
	}
	// A key with an unescaped closing quote is structural, so the body
	// key cannot be faked by a string's content.
	if i := bytes.Index(rest, lgBodyKey); i >= 0 {
		sent, cid = bodyFields(rest[i+len(lgBodyKey):])
	} else if bytes.Contains(rest, warmBodyKey) {
		sent = -1
	}
	return room, seq, sent, cid, true
}

// bodyFields reads "<unixNano> <cid>" at the start of a generator body
// (after its "lg ").
func bodyFields(b []byte) (sent int64, cid []byte) {
	sent, n := leadingInt(b)
	if n < len(b) && b[n] == ' ' {
		rest := b[n+1:]
		end := bytes.IndexAny(rest, " \"")
		if end < 0 {
			end = len(rest)
		}
		cid = rest[:end]
	}
	return sent, cid
}

// bodySent is the send time and cid in a generator's body; sent is 0 for
// any other body and -1 for a warm-up message.
func bodySent(body []byte) (int64, []byte) {
	if bytes.HasPrefix(body, []byte(warmBody)) {
		return -1, nil
	}
	if !bytes.HasPrefix(body, []byte("lg ")) {
		return 0, nil
	}
	return bodyFields(body[3:])
}

// cidSent is the send time in a generator's cid (a message's or a
// warm-up's), 0 for any other cid.
func cidSent(cid string) int64 {
	if len(cid) < 4 || (cid[:3] != lgCIDStart && cid[:3] != warmCID) {
		return 0
	}
	v, _ := leadingInt([]byte(cid[3:]))
	return v
}

// handle reads one frame of docs/PROTOCOL.md.
func (c *client) handle(p []byte) {
	now := time.Now().UnixNano()
	if room, seq, sent, cid, ok := parseMsg(p); ok {
		c.delivered(room, seq, sent, cid, now)
		// Once per message: a reference client may get it again by sync.
		if c.st.o.mentions > 0 && sent > 0 && room == c.room.id && c.count(seq) == 1 && c.ownMention(p) {
			c.st.mentionsResolved.Add(1)
		}
		return
	}
	f, err := decodeFrame(p)
	if err != nil {
		c.st.errs.add("bad_frame")
		c.st.logOnce("bad_frame", "user %s: frame %.120q is not JSON: %v", c.acct.name, p, err)
		return
	}
	switch f.Type {
	case "msg":
		sent, cid := bodySent([]byte(f.Body))
		c.delivered(f.Room, f.Seq, sent, cid, now)
	case "ack":
		if f.Room != c.room.id {
			c.st.foreign.Add(1)
			return
		}
		if strings.HasPrefix(f.CID, warmCID) {
			c.room.warmed(f)
			return
		}
		c.room.noteCID([]byte(f.CID), f.Seq)
		if c.ref != nil && !c.ref.takePending(f.CID) {
			c.st.lateAcks.Add(1) // a resent cid acked twice: counted once
			return
		}
		c.acks = append(c.acks, f.Seq)
		c.room.noteAcked(f.Seq)
		c.st.acked.Add(1)
		c.st.expectedLive.Add(int64(len(c.room.members)))
		if sent := cidSent(f.CID); sent > 0 {
			c.st.ackLat.record(now - sent)
		}
	case "error":
		if strings.HasPrefix(f.CID, warmCID) {
			c.st.warmErrs.add(f.Code)
			c.st.logOnce("warm-up error "+f.Code, "user %s: warm-up send: error %s: %s", c.acct.name, f.Code, f.Message)
			c.room.warmed(f)
			return
		}
		c.st.errs.add(f.Code)
		c.st.faultErr()
		c.st.logOnce("error "+f.Code, "user %s: error %s: %s (cid %q)", c.acct.name, f.Code, f.Message, f.CID)
		if c.ref != nil && c.ref.refused(c, f) {
			return
		}
		if cidSent(f.CID) > 0 {
			c.st.failedSends.Add(1)
		}
	case "pong":
		if c.st.storm != nil && c.pongAt == 0 {
			c.pongAt = now
		}
	case "gap":
		if c.ref != nil && f.Room == c.room.id {
			c.ref.gap(c, f.From, f.To)
		}
	case "synced":
		if c.ref != nil && f.Room == c.room.id {
			c.ref.synced(c, f.Seq)
		}
	}
	// ready, presence, read, typing, pong…: not measured.
}

// delivered records a msg at this recipient.
func (c *client) delivered(room, seq, sent int64, cid []byte, now int64) {
	if room != c.room.id {
		c.st.foreign.Add(1)
		return
	}
	if c.st.storm != nil {
		c.stormDelivered(cid, now)
		return
	}
	if cid != nil {
		c.room.noteCID(cid, seq)
	}
	if sent < 0 {
		c.st.warmDelivered.Add(1)
		if c.ref != nil {
			c.ref.warmSeq = seq
			c.ref.advance(c, seq)
		}
		return
	}
	switch {
	case seq > 0 && seq < maxSeqIndex:
		if int(seq) >= len(c.recv) {
			c.recv = append(c.recv, make([]uint8, int(seq)+1-len(c.recv)+64)...)
		}
		if c.recv[seq] < 255 {
			c.recv[seq]++
		}
	default:
		if c.extra == nil {
			c.extra = map[int64]uint32{}
		}
		c.extra[seq]++
	}
	// Live messages come in seq order on one connection; a sync answer
	// interleaves older ones, so frames during a sync are not judged.
	if c.ref == nil || !c.ref.isSyncing() {
		if seq < c.maxSeen {
			c.st.outOfOrder.Add(1)
			c.st.logOnce("out_of_order", "user %s: room %d: seq %d arrived after %d on one connection", c.acct.name, room, seq, c.maxSeen)
		}
		c.maxSeen = max(c.maxSeen, seq)
	}
	c.st.delivered.Add(1)
	if sent > 0 {
		lat := now - sent
		c.st.lat.record(lat)
		if at := receivedAt(c.conn); at > 0 {
			c.st.socketLat.record(at - sent)
		}
		c.st.live.Load().record(lat)
		c.st.faultRecord(sent, lat)
	}
	if c.ref != nil {
		c.ref.advance(c, seq)
	}
}

// count is how often seq reached this client.
func (c *client) count(seq int64) int {
	if seq > 0 && seq < int64(len(c.recv)) {
		return int(c.recv[seq])
	}
	return int(c.extra[seq])
}
