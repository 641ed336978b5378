package hub

import (
	"errors"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"moim/api"
)

// handle runs on a worker when c is readable: it reads what arrived,
// handles every complete frame, keeps a partial one, and re-arms c.
// waited is how long c waited for the worker since the poller found it
// readable, which admission counts (observeWait).
func (h *Hub) handle(c *Conn, waited time.Duration) {
	h.adm.observeWait(waited)
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
	if err := api.Unmarshal(msg, &in); err != nil { // strict: no duplicate or case-folded keys
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
	case "edit":
		h.edit(c, &in)
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
