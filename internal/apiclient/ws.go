package apiclient

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// DialOptions shape a WebSocket dial; the zero value dials from the
// default source address.
type DialOptions struct {
	// Source is the local address to dial from (one of 127.0.0.0/8 to
	// spread many connections over more ephemeral ports); nil: the default.
	Source net.IP
	// Control runs on the socket before it connects (e.g. to shrink its
	// receive buffer).
	Control func(network, address string, c syscall.RawConn) error
	// Header is sent with the upgrade (e.g. an Origin a proxy checks).
	Header http.Header
}

// DialURL opens a WebSocket to wsURL. The reader, when not nil, holds
// frames the server sent with the handshake and keeps reading the
// connection after them; read through it until it is empty.
func DialURL(ctx context.Context, wsURL string, o DialOptions) (net.Conn, *bufio.Reader, error) {
	nd := &net.Dialer{Control: o.Control}
	if o.Source != nil {
		nd.LocalAddr = &net.TCPAddr{IP: o.Source}
	}
	d := ws.Dialer{NetDial: nd.DialContext}
	if o.Header != nil {
		d.Header = ws.HandshakeHeaderHTTP(o.Header)
	}
	conn, br, _, err := d.Dial(ctx, wsURL)
	if err != nil {
		return nil, nil, err
	}
	return conn, br, nil
}

// WSURL is base's WebSocket endpoint for token (base: http(s)://host:port).
func WSURL(base, token string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/ws?token=" + url.QueryEscape(token)
}

// IsLoopback reports whether host names this machine's loopback.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SourceIP is the i-th (0-based) loopback source address: 127.0.0.1, …
func SourceIP(i int) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, 127<<24+uint32(i)+1)
	return ip
}

// Conn is one WebSocket of protocol v1 (docs/PROTOCOL.md). Writes are
// safe from several goroutines; reads belong to one.
type Conn struct {
	// Conn is the socket (for deadlines and Close).
	net.Conn
	// RW reads through the dialer's buffer (frames that came with the
	// handshake) and writes to the socket.
	RW io.ReadWriter
	// WMu is held by every write: senders and pong replies share the
	// socket (a test writing raw frames takes it too).
	WMu sync.Mutex
}

// Dial opens c's WebSocket; the server's first frame ("ready") is left to
// read.
func (c *Client) Dial(ctx context.Context, o DialOptions) (*Conn, error) {
	conn, br, err := DialURL(ctx, WSURL(c.Base, c.Token), o)
	if err != nil {
		return nil, err
	}
	return NewConn(conn, br), nil
}

// NewConn wraps a dialed socket and the reader DialURL returned with it.
func NewConn(conn net.Conn, br *bufio.Reader) *Conn {
	w := &Conn{Conn: conn, RW: conn}
	if br != nil {
		w.RW = struct {
			io.Reader
			io.Writer
		}{br, conn}
	}
	return w
}

// CloseError is the server's close frame.
type CloseError struct{ Code ws.StatusCode }

func (e CloseError) Error() string { return fmt.Sprintf("closed by server with %d", e.Code) }

// Send writes v as one JSON text frame.
func (w *Conn) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.SendText(b)
}

// SendText writes b as one masked text frame, within 5 s.
func (w *Conn) SendText(b []byte) error {
	w.WMu.Lock()
	defer w.WMu.Unlock()
	_ = w.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return wsutil.WriteClientText(w.RW, b)
}

// ReadText reads the next text frame's payload, answering pings; a close
// frame is returned as CloseError.
func (w *Conn) ReadText() ([]byte, error) {
	for {
		h, err := ws.ReadHeader(w.RW)
		if err != nil {
			return nil, err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(w.RW, payload); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(payload)
			return nil, CloseError{code}
		case ws.OpPing:
			w.WMu.Lock()
			err := ws.WriteFrame(w.Conn, ws.MaskFrameInPlace(ws.NewPongFrame(payload)))
			w.WMu.Unlock()
			if err != nil {
				return nil, err
			}
		case ws.OpText:
			return payload, nil
		}
	}
}

// ReadFrame reads the next text frame as a Frame.
func (w *Conn) ReadFrame() (Frame, error) {
	payload, err := w.ReadText()
	if err != nil {
		return Frame{}, err
	}
	var f Frame
	if err := json.Unmarshal(payload, &f); err != nil {
		return Frame{}, fmt.Errorf("frame %.200q is not JSON: %w", payload, err)
	}
	return f, nil
}

// AwaitReady reads the first frame and checks it is "ready".
func (w *Conn) AwaitReady() (Frame, error) {
	f, err := w.ReadFrame()
	if err != nil {
		return f, fmt.Errorf("read first frame: %w", err)
	}
	if f.Type != "ready" || f.Node == "" {
		return f, fmt.Errorf("first frame %+v, want ready", f)
	}
	return f, nil
}

// Goodbye sends a normal close (1000) and closes the socket.
func (w *Conn) Goodbye() error {
	w.WMu.Lock()
	_ = w.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_ = ws.WriteFrame(w.Conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	w.WMu.Unlock()
	return w.Conn.Close()
}
