package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"moim/internal/apiclient"
	"moim/internal/testkit"
)

// wsClient is a real WebSocket client (gobwas/ws) of one user, over the
// shared test kit.
type wsClient struct {
	t    testing.TB
	conn net.Conn
	rw   io.ReadWriter // reads through the dialer's buffer, if it kept bytes
	user int64
	wmu  *sync.Mutex // senders and pong replies share the connection
	kit  *testkit.WS
}

// frameMsg is any server frame of protocol v1.
type frameMsg = apiclient.Frame

func (n *testNode) wsURL() string { return "ws" + strings.TrimPrefix(n.url, "http") + "/ws" }

// adopt makes a socket the test dialed itself (e.g. with a ticket) user's
// wsClient; br is what the dialer read past the handshake, if anything.
func adopt(t testing.TB, conn net.Conn, br *bufio.Reader, user int64) *wsClient {
	c := apiclient.NewConn(conn, br)
	w := &testkit.WS{T: t, Conn: c, User: user}
	return &wsClient{t: t, conn: conn, rw: w.RW, user: user, wmu: &w.WMu, kit: w}
}

// connect opens a WebSocket as c and waits for "ready".
func (n *testNode) connect(c *client) *wsClient {
	c.t.Helper()
	k := c.kit()
	k.Base = n.url
	w := k.Connect(apiclient.DialOptions{})
	return &wsClient{t: c.t, conn: w.Conn.Conn, rw: w.RW, user: c.id, wmu: &w.WMu, kit: w}
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	w.kit.Send(v)
}

func (w *wsClient) sendRaw(b []byte) {
	w.t.Helper()
	if err := w.kit.SendText(b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// next reads the next data frame (answering pings), failing after 5 s.
func (w *wsClient) next() frameMsg {
	w.t.Helper()
	return w.kit.Next()
}

func (w *wsClient) read(timeout time.Duration) (frameMsg, error) {
	f, err := w.kit.Read(timeout)
	return f, closed(err)
}

// closedError is the server's close frame.
type closedError struct{ code ws.StatusCode }

func (e closedError) Error() string { return fmt.Sprintf("closed by server with %d", e.code) }

// closed turns the kit's close error into closedError.
func closed(err error) error {
	var ce apiclient.CloseError
	if errors.As(err, &ce) {
		return closedError{ce.Code}
	}
	return err
}

// readFrame reads the next text frame, answering pings; a close frame is
// returned as closedError.
func (w *wsClient) readFrame() (frameMsg, error) {
	f, err := w.kit.ReadFrame()
	return f, closed(err)
}

// await skips frames until one of type typ arrives.
func (w *wsClient) await(typ string) frameMsg {
	w.t.Helper()
	return w.kit.Await(typ)
}

// awaitWhere skips frames until one that want accepts arrives.
func (w *wsClient) awaitWhere(want func(frameMsg) bool) frameMsg {
	w.t.Helper()
	return w.kit.AwaitWhere(want)
}

// say sends a message and returns its ack.
func (w *wsClient) say(room int64, cid, body string) frameMsg {
	w.t.Helper()
	return w.kit.Say(room, cid, body)
}

// closeCode reads until the server closes and returns the close code.
func (w *wsClient) closeCode() ws.StatusCode {
	w.t.Helper()
	return w.kit.CloseCode()
}

// readRaw reads the next text frame's bytes, answering pings.
func (w *wsClient) readRaw() ([]byte, error) {
	b, err := w.kit.ReadText()
	return b, closed(err)
}

func deadlineIn(seconds int) time.Time { return time.Now().Add(time.Duration(seconds) * time.Second) }
