package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Centrifugo as a target (-target centrifugo): the peer Moim is measured
// against, driven with the same workload over its JSON client protocol
// (github.com/centrifugal/protocol, client.proto). Each generator user
// connects with an HS256 token naming it, each room is a channel with
// history and recovery (the server's own configuration; greet checks the
// channel is recoverable), the user subscribes to its room's channel and
// publishes into it. A publication's offset in the channel's stream plays
// the part of Moim's seq, so loss, duplicates and order are judged the
// same way; the publish reply is the ack. Centrifugo's user and channel
// set-up is a token and a name, so no REST calls happen.

// cfPath is the peer's bidirectional WebSocket endpoint.
const cfPath = "/connection/websocket"

// Command ids of the greeting; publishes count up from cfFirstPubID.
const (
	cfConnectID = iota + 1
	cfSubscribeID
	cfFirstPubID
)

// cfState is one connection's protocol state.
type cfState struct {
	// nextID numbers publish commands.
	nextID atomic.Uint32
	// pong: the server's application-level pings ("{}") want a "{}".
	pong bool

	mu sync.Mutex
	// pending maps a publish command's id to its cid until its reply.
	pending map[uint32]string

	// acked are the cids of acked publishes (reader only); their offsets
	// are only known from deliveries (ackedSeqs).
	acked []string
}

func newCFState() *cfState {
	cf := &cfState{pending: map[uint32]string{}}
	cf.nextID.Store(cfFirstPubID - 1)
	return cf
}

type centrifugoTarget struct{ lg *loadgen }

func newCentrifugoTarget(lg *loadgen) centrifugoTarget { return centrifugoTarget{lg} }

// accounts names the users PREFIX00001… as on Moim; each gets a
// connection token.
func (t centrifugoTarget) accounts(_ context.Context, n int) ([]*account, error) {
	exp := time.Now().Add(24 * time.Hour).Unix()
	out := make([]*account, n)
	for i := range out {
		name := fmt.Sprintf("%s%05d", t.lg.o.prefix, i+1)
		out[i] = &account{name: name, id: int64(i + 1), token: cfToken(t.lg.o.cfSecret, name, exp)}
	}
	return out, nil
}

// cfToken is an HS256 JWT for user sub, valid until exp (unix seconds).
func cfToken(secret []byte, sub string, exp int64) string {
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{"sub": sub, "exp": exp}) // strings and a number: cannot fail
	s := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(s))
	return s + "." + enc.EncodeToString(mac.Sum(nil))
}

// createRooms names a fresh channel per room: run and stage in the name,
// so a channel's offsets start at 1 like a new Moim room's seqs.
func (t centrifugoTarget) createRooms(_ context.Context, st *stage) error {
	for i, r := range st.rooms {
		r.id = int64(i + 1)
		r.channel = fmt.Sprintf("lg_%s_%d_%d", t.lg.runID, st.n, i+1)
	}
	return nil
}

func (t centrifugoTarget) wsURL(_ *client, node int) string {
	return t.lg.o.wsBases[node%len(t.lg.o.wsBases)]
}

// cfReply is any reply or push the generator reads, decoded in full
// (publications take parsePub's fast path first).
type cfReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    uint32 `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Push *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data   json.RawMessage `json:"data"`
			Offset int64           `json:"offset"`
		} `json:"pub"`
	} `json:"push"`
	Connect *struct {
		Pong bool `json:"pong"`
	} `json:"connect"`
	Subscribe *struct {
		Recoverable bool `json:"recoverable"`
	} `json:"subscribe"`
}

// greet connects with the user's token, then subscribes to the room's
// channel, one command and its reply at a time.
func (centrifugoTarget) greet(c *client, conn net.Conn, br *bufio.Reader) error {
	cmd := fmt.Appendf(nil, `{"id":%d,"connect":{"token":%q,"name":"loadgen"}}`, cfConnectID, c.acct.token)
	connect, err := cfExchange(c, conn, br, cmd, cfConnectID)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if connect.Connect == nil {
		return errors.New("connect: the reply has no connect result")
	}
	c.cf.pong = connect.Connect.Pong
	cmd = fmt.Appendf(nil, `{"id":%d,"subscribe":{"channel":%q}}`, cfSubscribeID, c.room.channel)
	sub, err := cfExchange(c, conn, br, cmd, cfSubscribeID)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", c.room.channel, err)
	}
	if sub.Subscribe == nil || !sub.Subscribe.Recoverable {
		return fmt.Errorf("subscribe to %s: channel not recoverable: the server must keep history with recovery (history_size, history_ttl, force_recovery)", c.room.channel)
	}
	return nil
}

// cfExchange writes one command and reads until the reply with its id
// (answering pings on the way).
func cfExchange(c *client, conn net.Conn, br *bufio.Reader, cmd []byte, id uint32) (*cfReply, error) {
	if _, err := conn.Write(appendClientFrame(nil, ws.OpText, cmd)); err != nil {
		return nil, err
	}
	for {
		_, op, payload, err := readFrame(br, &c.buf)
		if err != nil {
			return nil, fmt.Errorf("read reply: %w", err)
		}
		if op == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(payload)
			return nil, &closedError{code, reason}
		}
		if op != ws.OpText {
			continue
		}
		for line := range bytes.SplitSeq(payload, []byte{'\n'}) {
			if isPing(line) {
				if _, err := conn.Write(appendClientFrame(nil, ws.OpText, []byte("{}"))); err != nil {
					return nil, err
				}
				continue
			}
			var r cfReply
			if err := json.Unmarshal(line, &r); err != nil {
				return nil, fmt.Errorf("reply %.120q is not JSON: %w", line, err)
			}
			if r.ID != id {
				continue
			}
			if r.Error != nil {
				return nil, fmt.Errorf("error %d: %s", r.Error.Code, r.Error.Message)
			}
			return &r, nil
		}
	}
}

// isPing reports whether a line is the server's application-level ping.
func isPing(line []byte) bool { return string(line) == "{}" }

// appendSend appends a publish command whose data is {"body":"…"}; its
// id is remembered with the cid, for the reply.
func (centrifugoTarget) appendSend(dst []byte, c *client, cid, body []byte) []byte {
	id := c.cf.nextID.Add(1)
	c.cf.mu.Lock()
	c.cf.pending[id] = string(cid)
	c.cf.mu.Unlock()
	return appendPublish(dst, id, c.room.channel, body)
}

func (centrifugoTarget) appendWarmup(dst []byte, c *client, cid string) []byte {
	id := c.cf.nextID.Add(1)
	c.cf.mu.Lock()
	c.cf.pending[id] = cid
	c.cf.mu.Unlock()
	return appendPublish(dst, id, c.room.channel, []byte(warmBody))
}

// appendPublish appends a publish command; channel and body need no JSON
// escaping (the generator makes both).
func appendPublish(dst []byte, id uint32, channel string, body []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, uint64(id), 10)
	dst = append(dst, `,"publish":{"channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","data":{"body":"`...)
	dst = append(dst, body...)
	return append(dst, `"}}}`...)
}

var (
	pushPrefix  = []byte(`{"push":{"channel":"`)
	pubDataBody = []byte(`","pub":{"data":{"body":"`)
	offsetKey   = []byte(`"offset":`)
)

// parsePub reads a publication push the way the server encodes it
// (channel, then pub with data first and offset after info) without
// decoding all of it; ok is false for anything else, which then takes the
// full decoder. sent and cid are as parseMsg's.
func parsePub(line []byte) (channel []byte, offset, sent int64, cid []byte, ok bool) {
	rest, ok := bytes.CutPrefix(line, pushPrefix)
	if !ok {
		return nil, 0, 0, nil, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, 0, 0, nil, false
	}
	channel = rest[:end]
	if rest, ok = bytes.CutPrefix(rest[end:], pubDataBody); !ok {
		return nil, 0, 0, nil, false
	}
	end = stringEnd(rest)
	if end < 0 {
		return nil, 0, 0, nil, false
	}
	sent, cid = bodySent(rest[:end])
	// The offset follows the data (and the publisher's info, which
	// holds no "offset" key).
	rest = rest[end:]
	i := bytes.Index(rest, offsetKey)
	if i < 0 {
		return nil, 0, 0, nil, false
	}
	offset, n := leadingInt(rest[i+len(offsetKey):])
	if n == 0 {
		return nil, 0, 0, nil, false
	}
	return channel, offset, sent, cid, true
}

// stringEnd is the index of the quote closing the JSON string b starts
// inside of, or -1.
func stringEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// handle reads one WebSocket message: replies and pushes, several to a
// message separated by newlines.
func (centrifugoTarget) handle(c *client, p []byte) {
	now := time.Now().UnixNano()
	for line := range bytes.SplitSeq(p, []byte{'\n'}) {
		cfLine(c, line, now)
	}
}

func cfLine(c *client, line []byte, now int64) {
	if len(line) == 0 {
		return
	}
	if isPing(line) {
		if c.cf.pong {
			if err := c.writeRaw(appendClientFrame(nil, ws.OpText, []byte("{}"))); err != nil && !c.st.closing.Load() {
				c.st.errs.add("write")
			}
		}
		return
	}
	if channel, offset, sent, cid, ok := parsePub(line); ok {
		c.delivered(cfRoom(c, channel), offset, sent, cid, now)
		return
	}
	var r cfReply
	if err := json.Unmarshal(line, &r); err != nil {
		c.st.errs.add("bad_frame")
		c.st.logOnce("bad_frame", "user %s: line %.120q is not JSON: %v", c.acct.name, line, err)
		return
	}
	switch {
	case r.Push != nil && r.Push.Pub != nil:
		var data struct {
			Body string `json:"body"`
		}
		_ = json.Unmarshal(r.Push.Pub.Data, &data) // another publisher's data: no body, not ours
		sent, cid := bodySent([]byte(data.Body))
		c.delivered(cfRoom(c, []byte(r.Push.Channel)), r.Push.Pub.Offset, sent, cid, now)
	case r.ID >= cfFirstPubID:
		cfReplied(c, &r, now)
	}
	// Joins, leaves, other pushes: not measured.
}

// cfRoom is the room id a publication in channel counts for: c's room,
// or 0 (foreign) for any other channel.
func cfRoom(c *client, channel []byte) int64 {
	if string(channel) == c.room.channel {
		return c.room.id
	}
	return 0
}

// cfReplied handles the reply to a publish: the ack, or its refusal.
func cfReplied(c *client, r *cfReply, now int64) {
	c.cf.mu.Lock()
	cid, ok := c.cf.pending[r.ID]
	delete(c.cf.pending, r.ID)
	c.cf.mu.Unlock()
	if !ok {
		c.st.errs.add("unexpected_reply")
		c.st.logOnce("unexpected_reply", "user %s: reply to unknown command %d", c.acct.name, r.ID)
		return
	}
	if r.Error != nil {
		code := "centrifugo_" + strconv.FormatUint(uint64(r.Error.Code), 10)
		if strings.HasPrefix(cid, warmCID) {
			c.st.warmErrs.add(code)
			c.room.warmed(frame{Type: "error", CID: cid, Code: code})
			return
		}
		c.st.errs.add(code)
		c.st.failedSends.Add(1)
		c.st.logOnce("error "+code, "user %s: publish refused: %d %s", c.acct.name, r.Error.Code, r.Error.Message)
		return
	}
	if strings.HasPrefix(cid, warmCID) {
		c.room.warmed(frame{Type: "ack", CID: cid})
		return
	}
	c.cf.acked = append(c.cf.acked, cid)
	c.st.acked.Add(1)
	c.st.expectedLive.Add(int64(len(c.room.members)))
	if sent := cidSent(cid); sent > 0 {
		c.st.ackLat.record(now - sent)
	}
}

// ackedSeqs appends the offsets of c's acked publishes, as the room's
// deliveries recorded them; a publish acked but delivered to nobody gets
// a negative placeholder (*unseen counts them down), which every member
// then misses.
func (cf *cfState) ackedSeqs(r *room, seqs []int64, unseen *int64) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cid := range cf.acked {
		seq, ok := r.seqOf[cid]
		if !ok {
			*unseen--
			seq = *unseen
		}
		seqs = append(seqs, seq)
	}
	return seqs
}
