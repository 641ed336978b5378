//go:build !linux

package hub

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// Elsewhere than Linux the hub falls back to one reading goroutine per
// connection (see poller_other.go); the protocol and fan-out are the same.

type rawConn = syscall.RawConn

var errWouldBlock = errors.New("hub: would block")

// syscalls is empty off Linux; reads and writes go through net.Conn.
type syscalls struct{}

func (*syscalls) init() {}

// readSome blocks in the connection's own goroutine until bytes arrive.
func (c *Conn) readSome(buf []byte) (int, error) { return c.tcp.Read(buf) }

// writeNow writes what the socket takes at once: a deadline in the past
// makes the write return after one attempt instead of waiting.
func (c *Conn) writeNow(b []byte) (int, error) {
	_ = c.tcp.SetWriteDeadline(time.Now())
	n, err := c.tcp.Write(b)
	_ = c.tcp.SetWriteDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, nil
	}
	return n, err
}

// writevNow is writeNow for several buffers, copied into one.
func (c *Conn) writevNow(bs [][]byte) (int, error) {
	var all []byte
	for _, b := range bs {
		all = append(all, b...)
	}
	return c.writeNow(all)
}

// newConn takes over an upgraded socket.
func (h *Hub) newConn(tcp *net.TCPConn, user int64, name string) (*Conn, error) {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("hub: raw conn: %w", err)
	}
	c := &Conn{id: h.nextID.Add(1), user: user, name: name, tcp: tcp, raw: raw, hub: h}
	c.lastRead.Store(time.Now().UnixNano())
	return c, nil
}
