//go:build linux

package hub

import (
	"syscall"

	"golang.org/x/sys/unix"
)

type rawConn = syscall.RawConn

var errWouldBlock error = unix.EAGAIN

// readSome reads what the socket has without blocking. Go's poller already
// owns the descriptor, so conn.Read on a partial frame would park the
// worker; the raw read returns EAGAIN instead, and RawConn keeps the
// descriptor from being closed and reused under us.
func (c *Conn) readSome(buf []byte) (int, error) {
	var n int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), buf)
			if rerr != unix.EINTR {
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	return max(n, 0), rerr
}

// writeNow writes as much of b as the socket takes without blocking.
func (c *Conn) writeNow(b []byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Write(int(fd), b)
			if werr != unix.EINTR {
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if werr == unix.EAGAIN {
		return max(n, 0), nil
	}
	return max(n, 0), werr
}

func rawOf(c interface {
	SyscallConn() (syscall.RawConn, error)
}) (rawConn, int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, 0, err
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return nil, 0, err
	}
	return raw, fd, nil
}
