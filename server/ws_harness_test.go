package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// wsClient is a real WebSocket client (gobwas/ws) of one user.
type wsClient struct {
	t    testing.TB
	conn net.Conn
	rw   io.ReadWriter // reads through the dialer's buffer, if it kept bytes
	user int64
	wmu  sync.Mutex // senders and pong replies share the connection
}

// frameMsg is any server frame of protocol v1.
type frameMsg struct {
	Type    string `json:"type"`
	Room    int64  `json:"room"`
	Seq     int64  `json:"seq"`
	From    int64  `json:"from"`
	Name    string `json:"name"`
	Body    string `json:"body"`
	CID     string `json:"cid"`
	TS      int64  `json:"ts"`
	Kind    string `json:"kind"`
	ReplyTo int64  `json:"reply_to"`
	User    int64  `json:"user"`
	Node    string `json:"node"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Online  bool   `json:"online"`
	By      int64  `json:"by"`
	Deleted bool   `json:"deleted"`
	To      int64  `json:"to"` // a gap's last seq (From is its first)
	// RetryAfterMS is a rate_limited error's wait.
	RetryAfterMS int64 `json:"retry_after_ms"`
	// Notice is a notice event's notice (nil when it was cleared).
	Notice *struct {
		Seq  int64  `json:"seq"`
		Body string `json:"body"`
	} `json:"notice"`
	// Mentions are the members a message names as @username.
	Mentions []int64 `json:"mentions"`
	// Fee is a fee message's structured fields.
	Fee json.RawMessage `json:"fee"`
	// Attachment is the upload a message carries.
	Attachment *attachmentMeta `json:"attachment"`
	// EditedAt is an edited message's (or edited event's) edit time.
	EditedAt int64 `json:"edited_at"`
	// System is a system message's structured fields.
	System struct {
		Event    string `json:"event"`
		User     int64  `json:"user"`
		UserName string `json:"user_name"`
		By       int64  `json:"by"`
		Role     string `json:"role"`
		Name     string `json:"name"`
	} `json:"system"`
	// Invitation is an invitation event's invitation.
	Invitation struct {
		ID        int64  `json:"id"`
		RoomID    int64  `json:"room_id"`
		RoomName  string `json:"room_name"`
		InviterID int64  `json:"inviter_id"`
	} `json:"invitation"`
}

func (n *testNode) wsURL() string { return "ws" + strings.TrimPrefix(n.url, "http") + "/ws" }

// connect opens a WebSocket as c and waits for "ready".
func (n *testNode) connect(c *client) *wsClient {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, n.wsURL()+"?token="+c.token)
	if err != nil {
		c.t.Fatalf("dial %s: %v", n.wsURL(), err)
	}
	w := &wsClient{t: c.t, conn: conn, rw: conn, user: c.id}
	if br != nil {
		// The server's first frames may have arrived with the handshake.
		w.rw = struct {
			io.Reader
			io.Writer
		}{br, conn}
	}
	c.t.Cleanup(func() { conn.Close() })
	if f := w.next(); f.Type != "ready" || f.User != c.id || f.Node == "" {
		c.t.Fatalf("first frame %+v, want ready for user %d", f, c.id)
	}
	return w
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		w.t.Fatal(err)
	}
	w.sendRaw(b)
}

func (w *wsClient) sendRaw(b []byte) {
	w.t.Helper()
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_ = w.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := wsutil.WriteClientText(w.rw, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// next reads the next data frame (answering pings), failing after 5 s.
func (w *wsClient) next() frameMsg {
	w.t.Helper()
	f, err := w.read(5 * time.Second)
	if err != nil {
		w.t.Fatalf("user %d: read: %v", w.user, err)
	}
	return f
}

func (w *wsClient) read(timeout time.Duration) (frameMsg, error) {
	_ = w.conn.SetReadDeadline(time.Now().Add(timeout))
	return w.readFrame()
}

// closedError is the server's close frame.
type closedError struct{ code ws.StatusCode }

func (e closedError) Error() string { return fmt.Sprintf("closed by server with %d", e.code) }

// readFrame reads the next text frame, answering pings; a close frame is
// returned as closedError.
func (w *wsClient) readFrame() (frameMsg, error) {
	for {
		h, err := ws.ReadHeader(w.rw)
		if err != nil {
			return frameMsg{}, err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(w.rw, payload); err != nil {
			return frameMsg{}, err
		}
		switch h.OpCode {
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(payload)
			return frameMsg{}, closedError{code}
		case ws.OpPing:
			w.wmu.Lock()
			err := ws.WriteFrame(w.conn, ws.MaskFrameInPlace(ws.NewPongFrame(payload)))
			w.wmu.Unlock()
			if err != nil {
				return frameMsg{}, err
			}
		case ws.OpText:
			var f frameMsg
			if err := json.Unmarshal(payload, &f); err != nil {
				return frameMsg{}, fmt.Errorf("frame %q is not JSON: %w", payload, err)
			}
			return f, nil
		}
	}
}

// await skips frames until one of type typ arrives.
func (w *wsClient) await(typ string) frameMsg {
	w.t.Helper()
	return w.awaitWhere(func(f frameMsg) bool {
		if f.Type == "error" && typ != "error" {
			w.t.Fatalf("user %d waiting for %s got error %s: %s", w.user, typ, f.Code, f.Message)
		}
		return f.Type == typ
	})
}

// awaitWhere skips frames until one that want accepts arrives.
func (w *wsClient) awaitWhere(want func(frameMsg) bool) frameMsg {
	w.t.Helper()
	for {
		if f := w.next(); want(f) {
			return f
		}
	}
}

// say sends a message and returns its ack.
func (w *wsClient) say(room int64, cid, body string) frameMsg {
	w.t.Helper()
	w.send(map[string]any{"type": "send", "room": room, "cid": cid, "body": body})
	return w.await("ack")
}

// closeCode reads until the server closes and returns the close code.
func (w *wsClient) closeCode() ws.StatusCode {
	w.t.Helper()
	_ = w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, err := w.readFrame()
		var ce closedError
		if errors.As(err, &ce) {
			return ce.code
		}
		if err != nil {
			w.t.Fatalf("waiting for close: %v", err)
		}
	}
}

// readRaw reads the next text frame's bytes, answering pings.
func (w *wsClient) readRaw() ([]byte, error) {
	for {
		h, err := ws.ReadHeader(w.rw)
		if err != nil {
			return nil, err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(w.rw, payload); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpText:
			return payload, nil
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(payload)
			return nil, closedError{code}
		}
	}
}

func deadlineIn(seconds int) time.Time { return time.Now().Add(time.Duration(seconds) * time.Second) }
