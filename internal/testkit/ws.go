package testkit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"moim/internal/apiclient"
)

// WS is a WebSocket of one user, bound to a test: a failed read or write
// fails it. The test reads from one goroutine.
type WS struct {
	T testing.TB
	*apiclient.Conn
	// User is the connection's user id.
	User int64
	// held are frames that came while Connect waited for its pong, read
	// before any later one.
	held []apiclient.Frame
}

// Connect opens c's WebSocket with o, waits for "ready" for c's user and
// then for the answer to a ping, and closes the socket when the test
// ends. The node sends "ready" before the connection joins its rooms and
// reads its frames only once it has (docs/PROTOCOL.md, section 1): a
// test that went on at "ready" could miss a message sent right after.
func (c *Client) Connect(o apiclient.DialOptions) *WS {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.Dial(ctx, o)
	if err != nil {
		c.T.Fatalf("dial %s: %v", c.Base, err)
	}
	c.T.Cleanup(func() { conn.Conn.Close() })
	w := &WS{T: c.T, Conn: conn, User: c.ID}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if f, err := conn.AwaitReady(); err != nil || f.User != c.ID {
		c.T.Fatalf("user %d: %+v %v, want ready", c.ID, f, err)
	}
	w.Send(map[string]any{"type": "ping"})
	for {
		f, err := conn.ReadFrame()
		if err != nil {
			c.T.Fatalf("user %d: waiting for the pong after ready: %v", c.ID, err)
		}
		if f.Type == "pong" {
			return w
		}
		w.held = append(w.held, f)
	}
}

// ReadFrame reads the next frame, the held ones first.
func (w *WS) ReadFrame() (apiclient.Frame, error) {
	if len(w.held) > 0 {
		f := w.held[0]
		w.held = w.held[1:]
		return f, nil
	}
	return w.Conn.ReadFrame()
}

// Send writes v as one JSON text frame.
func (w *WS) Send(v any) {
	w.T.Helper()
	if err := w.Conn.Send(v); err != nil {
		w.T.Fatalf("user %d: write: %v", w.User, err)
	}
}

// Read reads the next frame within timeout.
func (w *WS) Read(timeout time.Duration) (apiclient.Frame, error) {
	_ = w.SetReadDeadline(time.Now().Add(timeout))
	return w.ReadFrame()
}

// Next reads the next frame, failing after 5 s.
func (w *WS) Next() apiclient.Frame {
	w.T.Helper()
	f, err := w.Read(5 * time.Second)
	if err != nil {
		w.T.Fatalf("user %d: read: %v", w.User, err)
	}
	return f
}

// AwaitWhere skips frames until one that want accepts arrives.
func (w *WS) AwaitWhere(want func(apiclient.Frame) bool) apiclient.Frame {
	w.T.Helper()
	for {
		if f := w.Next(); want(f) {
			return f
		}
	}
}

// Await skips frames until one of type typ arrives; an error frame on the
// way fails the test (unless typ is "error").
func (w *WS) Await(typ string) apiclient.Frame {
	w.T.Helper()
	return w.AwaitWhere(func(f apiclient.Frame) bool {
		if f.Type == "error" && typ != "error" {
			w.T.Fatalf("user %d waiting for %s got error %s: %s", w.User, typ, f.Code, f.Message)
		}
		return f.Type == typ
	})
}

// Say sends a message and returns its ack. A node past its capacity
// refuses the send as busy and stores nothing; Say then resends the same
// cid after the wait the node names, as clients do (docs/PROTOCOL.md):
// a test on a loaded host sees refusals, not failures. Any other error
// fails the test.
func (w *WS) Say(room int64, cid, body string) apiclient.Frame {
	w.T.Helper()
	for {
		w.Send(map[string]any{"type": "send", "room": room, "cid": cid, "body": body})
		f := w.AwaitWhere(func(f apiclient.Frame) bool {
			if f.Type == "error" && !(f.Code == "busy" && f.CID == cid) {
				w.T.Fatalf("user %d sending %s got error %s: %s", w.User, cid, f.Code, f.Message)
			}
			return f.Type == "ack" && f.CID == cid || f.Type == "error"
		})
		if f.Type == "ack" {
			return f
		}
		time.Sleep(time.Duration(f.RetryAfterMS) * time.Millisecond)
	}
}

// CloseCode reads until the server closes and returns the close code.
func (w *WS) CloseCode() ws.StatusCode {
	w.T.Helper()
	_ = w.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, err := w.ReadText()
		var ce apiclient.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			w.T.Fatalf("waiting for close: %v", err)
		}
	}
}
