//go:build linux

package rawio

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a TCP connection whose Read and Write are raw system calls,
// waiting in Go's network poller, as net.TCPConn's do, when the socket
// has nothing to read or no room to write. Deadlines, Close and the
// addresses are the TCPConn's. It does not offer SyscallConn, so a
// client that would peek at the socket through package syscall (go-redis's
// health check of a pooled connection, a system call per command) goes
// without: a connection the server dropped fails its next command.
type Conn struct {
	tcp   *net.TCPConn
	raw   syscall.RawConn
	read  op
	write op
}

// op is one direction's call state, its callback built once: a closure
// per call would escape to the heap on every read and write. mu makes
// concurrent calls in one direction safe, as net.Conn's are.
type op struct {
	mu  sync.Mutex
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

// Dial connects to addr over TCP as d would and returns a Conn.
func Dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tcp, ok := nc.(*net.TCPConn)
	if !ok {
		return nc, nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		_ = tcp.Close()
		return nil, fmt.Errorf("rawio: %s: %w", addr, err)
	}
	c := &Conn{tcp: tcp, raw: raw}
	c.read.fn = func(fd uintptr) bool {
		for {
			c.read.n, c.read.err = Read(fd, c.read.buf)
			if c.read.err != unix.EINTR {
				return c.read.err != unix.EAGAIN
			}
		}
	}
	c.write.fn = func(fd uintptr) bool {
		for len(c.write.buf) > 0 {
			n, err := Write(fd, c.write.buf)
			switch err {
			case nil:
				c.write.n += n
				c.write.buf = c.write.buf[n:]
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				c.write.err = err
				return true
			}
		}
		return true
	}
	return c, nil
}

// Read reads what the socket has, waiting for something if it has
// nothing; 0 bytes and io.EOF once the peer closed its side.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.read.mu.Lock()
	defer c.read.mu.Unlock()
	c.read.buf = b
	err := c.raw.Read(c.read.fn)
	c.read.buf = nil
	switch {
	case err != nil:
		return 0, err
	case c.read.err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.tcp.LocalAddr(), Addr: c.tcp.RemoteAddr(), Err: c.read.err}
	case c.read.n == 0:
		return 0, io.EOF
	}
	return c.read.n, nil
}

// Write writes all of b, waiting for room when the socket has none.
func (c *Conn) Write(b []byte) (int, error) {
	c.write.mu.Lock()
	defer c.write.mu.Unlock()
	c.write.buf, c.write.n, c.write.err = b, 0, nil
	err := c.raw.Write(c.write.fn)
	n := c.write.n
	c.write.buf = nil
	if err == nil && c.write.err != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Source: c.tcp.LocalAddr(), Addr: c.tcp.RemoteAddr(), Err: c.write.err}
	}
	return n, err
}

// Close closes the connection.
func (c *Conn) Close() error { return c.tcp.Close() }

// LocalAddr is the connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.tcp.LocalAddr() }

// RemoteAddr is the connection's peer address.
func (c *Conn) RemoteAddr() net.Addr { return c.tcp.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.tcp.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.tcp.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.tcp.SetWriteDeadline(t) }
