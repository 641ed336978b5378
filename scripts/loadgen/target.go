package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/gobwas/ws"
)

// target is the server the generator drives. The workload (users, rooms,
// pacing, the timestamped body) and the accounting (latency at every
// recipient, acks, loss, duplicates, CPU) are the same for every target;
// only how users and rooms come to exist and the wire protocol differ, so
// Moim can be measured beside a peer in the same run on the same host.
type target interface {
	// accounts returns the first n generator users, with credentials.
	accounts(ctx context.Context, n int) ([]*account, error)
	// createRooms gives each of the stage's rooms its identity on the
	// server (and its members access to it).
	createRooms(ctx context.Context, st *stage) error
	// wsURL is the WebSocket URL c dials on the node -url names at index
	// node (modulo their number).
	wsURL(c *client, node int) string
	// greet runs on a fresh connection, before anyone else writes to it,
	// until c receives its room's messages live.
	greet(c *client, conn net.Conn, br *bufio.Reader) error
	// appendSend appends the payload of one chat message with the given
	// cid and body (appendBody) to dst; it runs under c.wmu.
	appendSend(dst []byte, c *client, cid, body []byte) []byte
	// appendWarmup appends the payload of a room's warm-up message.
	appendWarmup(dst []byte, c *client, cid string) []byte
	// handle reads one server text message.
	handle(c *client, p []byte)
}

// appendCID appends a generator cid: "lg-<unixNano>-<n base 36>", so an
// ack carrying only the cid still tells its send time.
func appendCID(dst []byte, now int64, n uint64) []byte {
	dst = append(dst, lgCIDStart...)
	dst = strconv.AppendInt(dst, now, 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, n, 36)
}

// appendBody appends a generator message body: "lg <unixNano> <cid>",
// padded with pad's bytes to size (when it is longer than that already,
// it is left as it is). Recipients read the send time from it.
func appendBody(dst []byte, now int64, cid, pad []byte, size int) []byte {
	return appendMentionBody(dst, now, cid, "", pad, size)
}

// appendMentionBody is appendBody naming user mention ("@name" after the
// cid, within size) unless it is "".
func appendMentionBody(dst []byte, now int64, cid []byte, mention string, pad []byte, size int) []byte {
	start := len(dst)
	dst = append(dst, "lg "...)
	dst = strconv.AppendInt(dst, now, 10)
	dst = append(dst, ' ')
	dst = append(dst, cid...)
	if mention != "" {
		dst = append(dst, " @"...)
		dst = append(dst, mention...)
	}
	if n := size - (len(dst) - start); n > 0 {
		dst = append(dst, ' ')
		dst = append(dst, pad[:min(n-1, len(pad))]...)
	}
	return dst
}

// moimTarget is a Moim node: users sign up over REST, rooms are created
// over REST, and the WebSocket speaks docs/PROTOCOL.md.
type moimTarget struct{ lg *loadgen }

func (t moimTarget) accounts(ctx context.Context, n int) ([]*account, error) {
	return t.lg.ensureAccounts(ctx, n)
}

func (t moimTarget) createRooms(ctx context.Context, st *stage) error {
	return t.lg.createRooms(ctx, st)
}

func (t moimTarget) wsURL(c *client, node int) string {
	return t.lg.o.wsBases[node%len(t.lg.o.wsBases)] + url.QueryEscape(c.acct.token)
}

// greet waits for the node's "ready" for c's user, then, except in a
// connection storm (which measures that wait itself), for the answer to a
// ping: the node reads a connection's frames only once it has joined the
// user's rooms (docs/PROTOCOL.md section 1), so from then on every message
// of the rooms reaches c live. Without it a message sent by another
// member right after this ready could be published before the join, and
// counted lost. Frames before the answer are handled as the reader would.
func (moimTarget) greet(c *client, conn net.Conn, br *bufio.Reader) error {
	ready := false
	for {
		fin, op, payload, err := readFrame(br, &c.buf)
		if err != nil {
			return fmt.Errorf("read first frames: %w", err)
		}
		if op == ws.OpPing || op == ws.OpPong {
			continue
		}
		if ready {
			if op != ws.OpText || !fin {
				return fmt.Errorf("frame %v before the pong, want whole text frames", op)
			}
			if bytes.HasPrefix(payload, pongStart) {
				return nil
			}
			c.st.lg.tgt.handle(c, payload)
			continue
		}
		var f frame
		if op != ws.OpText || !fin || json.Unmarshal(payload, &f) != nil || f.Type != "ready" {
			return fmt.Errorf("first frame is %v %.80q, want ready", op, payload)
		}
		if f.User != c.acct.id {
			return fmt.Errorf("ready for user %d, want %d", f.User, c.acct.id)
		}
		if c.st.storm != nil {
			return nil
		}
		if _, err := conn.Write(appendClientFrame(nil, ws.OpText, pingPayload)); err != nil {
			return fmt.Errorf("ping after ready: %w", err)
		}
		ready = true
	}
}

var (
	pingPayload = []byte(`{"type":"ping"}`)
	pongStart   = []byte(`{"type":"pong"`)
)

func (moimTarget) appendSend(dst []byte, c *client, cid, body []byte) []byte {
	dst = append(dst, `{"type":"send","room":`...)
	dst = strconv.AppendInt(dst, c.room.id, 10)
	dst = append(dst, `,"cid":"`...)
	dst = append(dst, cid...)
	dst = append(dst, `","body":"`...)
	dst = append(dst, body...)
	return append(dst, `"}`...)
}

func (moimTarget) appendWarmup(dst []byte, c *client, cid string) []byte {
	dst = append(dst, `{"type":"send","room":`...)
	dst = strconv.AppendInt(dst, c.room.id, 10)
	dst = append(dst, `,"cid":"`...)
	dst = append(dst, cid...)
	return append(dst, `","body":"`+warmBody+`"}`...)
}

func (moimTarget) handle(c *client, p []byte) { c.handle(p) }
