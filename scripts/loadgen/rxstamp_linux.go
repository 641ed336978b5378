//go:build linux

package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stampedConn reads a client's socket with recvmsg and keeps the kernel's
// receive time of the last packet each read returned (SO_TIMESTAMPNS), so
// a delivery's latency can be split at the socket: up to it the server's
// and the network's, after it the generator's own wait to read, which
// grows when the generator shares saturated cores with the server.
type stampedConn struct {
	net.Conn
	raw syscall.RawConn
	// pre is what the handshake's reader had buffered, read first.
	pre []byte
	// at is the receive time (unix ns) of the last packet read; 0 until
	// a read brings one. Only the connection's reader touches it.
	at int64
	// recvmsg's arguments and results, kept between reads: x/sys/unix's
	// Recvmsg allocates a sockaddr a call, and a closure per call would
	// allocate too.
	msg   unix.Msghdr
	iov   unix.Iovec
	oob   [oobSize]byte
	n     int
	errno syscall.Errno
	// waitFn waits in Go's poller while the socket is empty (Read);
	// tryFn does not (readNow).
	waitFn, tryFn func(fd uintptr) bool
}

// oobSize is a control message holding one timespec: a 16-byte cmsghdr
// (length, level, type) and the timespec.
const oobSize = 32

// stampReads turns on receive timestamps on conn and returns it wrapped,
// with a reader over it that starts with what br (the handshake's reader,
// may be nil) holds. On a socket that refuses the option it returns conn
// and br as they were.
func stampReads(conn net.Conn, br *bufio.Reader) (net.Conn, *bufio.Reader) {
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return conn, br
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return conn, br
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return conn, br
	}
	s := &stampedConn{Conn: conn, raw: raw}
	if br != nil && br.Buffered() > 0 {
		s.pre, _ = br.Peek(br.Buffered())
		s.pre = append([]byte(nil), s.pre...)
	}
	s.waitFn = func(fd uintptr) bool {
		s.recvmsg(fd)
		return s.errno != unix.EAGAIN
	}
	s.tryFn = func(fd uintptr) bool {
		s.recvmsg(fd)
		return true
	}
	return s, bufio.NewReaderSize(s, 4096)
}

func (s *stampedConn) recvmsg(fd uintptr) {
	for {
		n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&s.msg)), 0)
		s.n, s.errno = int(n), errno
		if errno != unix.EINTR {
			return
		}
	}
}

// Read is recvmsg through Go's poller (deadlines hold), noting the
// receive time the kernel attached.
func (s *stampedConn) Read(p []byte) (int, error) {
	if len(s.pre) > 0 {
		n := copy(p, s.pre)
		s.pre = s.pre[n:]
		return n, nil
	}
	return s.read(p, s.waitFn)
}

// readNow is one recvmsg that never waits: unix.EAGAIN when the socket
// is empty. For a reader that learns from epoll when to read (rxloop).
func (s *stampedConn) readNow(p []byte) (int, error) { return s.read(p, s.tryFn) }

func (s *stampedConn) read(p []byte, fn func(fd uintptr) bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.iov.Base = &p[0]
	s.iov.SetLen(len(p))
	s.msg.Iov = &s.iov
	s.msg.SetIovlen(1)
	s.msg.Control = &s.oob[0]
	s.msg.SetControllen(len(s.oob))
	err := s.raw.Read(fn)
	s.iov.Base = nil // not to keep p alive
	switch {
	case err != nil:
		return 0, err
	case s.errno != 0:
		return 0, s.errno
	case s.n == 0:
		return 0, io.EOF
	}
	if at := arrival(s.oob[:s.msg.Controllen]); at > 0 {
		s.at = at
	}
	return s.n, nil
}

// arrival is the receive time (unix ns) in a recvmsg's control bytes:
// for TCP, that of the last packet the read returned, so the data before
// it in the read had waited at least as long. 0 when oob holds none.
func arrival(oob []byte) int64 {
	if len(oob) < oobSize {
		return 0
	}
	ne := binary.NativeEndian
	if int32(ne.Uint32(oob[8:])) != unix.SOL_SOCKET || int32(ne.Uint32(oob[12:])) != unix.SCM_TIMESTAMPNS {
		return 0
	}
	return int64(ne.Uint64(oob[16:]))*1e9 + int64(ne.Uint64(oob[24:]))
}

// receivedAt is the kernel's receive time of the last packet read on
// conn (unix ns), 0 when conn does not keep one.
func receivedAt(conn net.Conn) int64 {
	if s, ok := conn.(*stampedConn); ok {
		return s.at
	}
	return 0
}
