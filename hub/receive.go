package hub

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"moim/api"
)

// handle runs on a worker when c is readable: it reads what arrived,
// handles every complete frame, keeps a partial one, and lets c go
// (release), reading again if more arrived meanwhile. waited is how long
// c waited for the worker since the poller found it readable, which
// admission counts (observeWait). A message the poller's goroutine
// parsed and left to a worker (handleHere) comes first.
func (h *Hub) handle(c *Conn, waited time.Duration) {
	h.adm.observeWait(waited)
	for {
		c.readMu.Lock()
		resume := c.later != nil
		if resume {
			in := c.later
			c.later = nil
			h.dispatch(c, in)
		}
		got := h.readFrames(c, false, resume)
		c.readMu.Unlock()
		if got != framesRead || !c.release() {
			return
		}
	}
}

// handleHere is handle on the poller's own goroutine, for the last
// connection of each readiness batch on a broker whose sends do not wait
// (pipeliner): a send or a ping, the common frames, is handled there,
// without waking a worker for it (a goroutine readied and a thread woken,
// a tenth of the node's CPU at 1000 × 1000: docs/BENCHMARKS.md, "Session
// 24"). At the first frame that may wait (a read position, a sync, a
// send with a mention or an attachment) the rest is left to a worker;
// it reports whether to hand c to one.
func (h *Hub) handleHere(c *Conn) bool {
	for {
		c.readMu.Lock()
		got := h.readFrames(c, true, false)
		c.readMu.Unlock()
		switch {
		case got == framesLeft:
			return true
		case got == connClosed || !c.release():
			return false
		}
	}
}

// framesRead, framesLeft and connClosed are what readFrames did: read
// every complete frame (c is to be released), left the rest to a worker
// (c.later, c.pending), or closed c.
const (
	framesRead = iota
	framesLeft
	connClosed
)

// readFrames handles what is readable on c; here (the poller's goroutine)
// it stops at the first message that may wait. resume handles what a
// hand-off left in c.pending though nothing new is readable.
//
// It reads until the socket is drained (here, until a read fills the
// buffer: a worker reads the rest): the poller reports a connection again
// only when new bytes arrive (edge-triggered), and a read that fills less
// than the buffer took everything the socket had.
func (h *Hub) readFrames(c *Conn, here, resume bool) int {
	bp := h.scratch.Get().(*[]byte)
	defer h.scratch.Put(bp)
	buf := *bp
	for {
		n, err := c.readSome(buf)
		switch {
		case err == errWouldBlock && resume:
			n = 0
		case err == errWouldBlock:
			return framesRead
		case err != nil || n == 0:
			h.drop(c, err)
			return connClosed
		}
		resume = false
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
				return connClosed
			}
			data = data[used:]
			c.lastRead.Store(time.Now().UnixNano())
			h.metrics.framesIn.Inc()
			switch h.frame(c, hd, payload, here) {
			case connClosed:
				return connClosed
			case framesLeft:
				if len(data) > 0 {
					c.pending = append([]byte(nil), data...)
				}
				return framesLeft
			}
		}
		if len(data) > 0 {
			c.pending = append([]byte(nil), data...)
		}
		switch {
		case n < len(buf):
			return framesRead
		case here:
			return framesLeft // a worker reads on; the poller's goroutine has others
		}
	}
}

// frame handles one frame and says what became of c (readFrames); here,
// a message that may wait is parsed and left in c.later.
func (h *Hub) frame(c *Conn, hd ws.Header, payload []byte, here bool) int {
	switch hd.OpCode {
	case ws.OpPing:
		c.write(compile(ws.OpPong, payload))
		return framesRead
	case ws.OpPong:
		return framesRead
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameData(payload)
		if !echoable(code) {
			code = ws.StatusNormalClosure
		}
		h.closeConn(c, code, "")
		return connClosed
	case ws.OpBinary:
		h.closeConn(c, ws.StatusUnsupportedData, "binary frames are not supported; send JSON text")
		return connClosed
	case ws.OpText:
		if c.inFrag {
			h.closeConn(c, ws.StatusProtocolError, "new message before the last one ended")
			return connClosed
		}
		if !hd.Fin {
			c.inFrag = true
			c.message = append(c.message[:0], payload...)
			return framesRead
		}
		return h.message(c, payload, here)
	case ws.OpContinuation:
		if !c.inFrag {
			h.closeConn(c, ws.StatusProtocolError, "continuation without a message")
			return connClosed
		}
		if len(c.message)+len(payload) > MaxMessage {
			h.closeConn(c, ws.StatusMessageTooBig, "message larger than 64 KiB")
			return connClosed
		}
		c.message = append(c.message, payload...)
		if !hd.Fin {
			return framesRead
		}
		msg := c.message
		c.inFrag, c.message = false, nil
		return h.message(c, msg, here)
	}
	h.closeConn(c, ws.StatusProtocolError, "unknown opcode")
	return connClosed
}

// message handles one complete text message; here, one that may wait is
// left in c.later for a worker.
func (h *Hub) message(c *Conn, msg []byte, here bool) int {
	if !utf8.Valid(msg) {
		h.closeConn(c, ws.StatusInvalidFramePayloadData, "text is not valid UTF-8")
		return connClosed
	}
	var in inbound
	if err := api.Unmarshal(msg, &in); err != nil { // strict: no duplicate or case-folded keys
		h.fail(c, "bad_request", "frame is not a protocol v1 JSON object", "", 0)
		return framesRead
	}
	if here && !waitsNot(&in) {
		c.later = &in
		return framesLeft
	}
	h.dispatch(c, &in)
	return framesRead
}

// waitsNot reports whether handling in never waits (handleHere): a ping,
// or a send with neither a mention to look up nor an attachment to check.
func waitsNot(in *inbound) bool {
	return in.Type == "ping" || (in.Type == "send" && in.Attachment == "" && !strings.Contains(in.Body, "@"))
}

// dispatch handles one parsed message.
func (h *Hub) dispatch(c *Conn, in *inbound) {
	switch in.Type {
	case "send":
		h.send(c, in)
	case "sync":
		h.sync(c, in)
	case "read":
		h.read(c, in)
	case "typing":
		h.typing(c, in)
	case "delete":
		h.delete(c, in)
	case "edit":
		h.edit(c, in)
	case "ping":
		c.write(pongEvent)
	default:
		h.fail(c, "bad_request", "unknown type "+strconv.Quote(in.Type), in.CID, 0)
	}
}

// echoable reports whether a client's close code may be sent back (RFC
// 6455 7.4: 1004–1006 and 1015 never travel in a close frame).
func echoable(code ws.StatusCode) bool {
	return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) || (code >= 3000 && code <= 4999)
}

var pongEvent = textFrame([]byte(`{"type":"pong"}`))

// failWith sends err as an error frame: an api error's code and message,
// anything else as unavailable (logged, never shown).
func (h *Hub) failWith(c *Conn, err error, cid string, room int64) {
	var ae *api.Error
	if errors.As(err, &ae) {
		h.fail(c, ae.Code, ae.Message, cid, room)
		return
	}
	h.log.Warn("request failed", "room", room, "err", err)
	h.fail(c, "unavailable", "try again shortly", cid, room)
}

func (h *Hub) fail(c *Conn, code, message, cid string, room int64) {
	h.metrics.errors.WithLabelValues(code).Inc()
	c.write(textFrame(encode(errorEvent{Type: "error", Code: code, Message: message, CID: cid, Room: room})))
}
