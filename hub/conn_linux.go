//go:build linux

package hub

import (
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"moim/internal/rawio"
)

type rawConn = syscall.RawConn

var errWouldBlock error = unix.EAGAIN

// syscalls holds a connection's raw read and write callbacks, built once
// per connection: a closure per call would escape to the heap on every
// write, three allocations per recipient in a fan-out.
type syscalls struct {
	buf      []byte
	bufs     [][]byte
	iovs     []unix.Iovec
	n        int
	err      error
	readFn   func(fd uintptr) bool
	writeFn  func(fd uintptr) bool
	writevFn func(fd uintptr) bool
}

func (s *syscalls) init() {
	s.readFn = func(fd uintptr) bool {
		for {
			s.n, s.err = rawio.Read(fd, s.buf)
			if s.err != unix.EINTR {
				return true
			}
		}
	}
	s.writevFn = func(fd uintptr) bool {
		for {
			s.n, s.iovs, s.err = rawio.Writev(fd, s.bufs, s.iovs)
			if s.err != unix.EINTR {
				return true
			}
		}
	}
	s.writeFn = func(fd uintptr) bool {
		for {
			s.n, s.err = rawio.Write(fd, s.buf)
			if s.err != unix.EINTR {
				return true
			}
		}
	}
}

// readSome reads what the socket has without blocking. Go's poller already
// owns the descriptor, so conn.Read on a partial frame would park the
// worker; the raw read returns EAGAIN instead, and RawConn keeps the
// descriptor from being closed and reused under us. Callers hold readMu.
func (c *Conn) readSome(buf []byte) (int, error) {
	s := &c.rsys
	s.buf = buf
	err := c.raw.Read(s.readFn)
	s.buf = nil
	if err != nil {
		return 0, err
	}
	return max(s.n, 0), s.err
}

// writeNow writes as much of b as the socket takes without blocking.
// Callers hold c.mu.
func (c *Conn) writeNow(b []byte) (int, error) {
	c.wsys.buf = b
	n, err := c.rawWrite(c.wsys.writeFn)
	c.wsys.buf = nil
	return n, err
}

// writevNow is writeNow for several buffers, in one writev (at most
// iovMax).
func (c *Conn) writevNow(bs [][]byte) (int, error) {
	c.wsys.bufs = bs
	n, err := c.rawWrite(c.wsys.writevFn)
	c.wsys.bufs = nil
	return n, err
}

func (c *Conn) rawWrite(fn func(fd uintptr) bool) (int, error) {
	s := &c.wsys
	if err := c.raw.Write(fn); err != nil {
		return 0, err
	}
	if s.err == unix.EAGAIN {
		return max(s.n, 0), nil
	}
	return max(s.n, 0), s.err
}

// newConn takes over an upgraded socket.
func (h *Hub) newConn(tcp *net.TCPConn, user int64, name string) (*Conn, error) {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("hub: raw conn: %w", err)
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return nil, fmt.Errorf("hub: descriptor: %w", err)
	}
	c := &Conn{id: h.nextID.Add(1), fd: fd, user: user, name: name, tcp: tcp, raw: raw, hub: h}
	c.rsys.init()
	c.wsys.init()
	c.lastRead.Store(time.Now().UnixNano())
	return c, nil
}
