//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// rxLoop reads the sockets of many clients from one goroutine, told by
// an epoll set which have bytes, as the node's own loop does. A
// goroutine per socket, parked in Go's poller, costs a wake-up, a second
// recvmsg that finds the socket empty and a park for every frame the
// node writes, on the cores the server being measured runs on
// (docs/BENCHMARKS.md, "Session 38").
type rxLoop struct {
	epfd int
	f    *os.File        // epfd, to park on
	ep   syscall.RawConn // f in Go's poller: the loop parks there
	done chan struct{}   // closed when the loop's goroutine returns
	mu   sync.Mutex
	regs map[uint64]*rxReg
	next uint64
	// closed: no more registrations; the loop is stopping.
	closed bool
}

// rxReg is one connection read by a loop.
type rxReg struct {
	id     uint64
	c      *client
	sc     *stampedConn
	buf    []byte // bytes read and not yet a whole frame
	inFrag bool
}

// rxBufSize is what one read asks for at least, and what the buffer
// shrinks back to once a large frame has passed.
const rxBufSize = 4096

// read starts reading c's connection: on one of the stage's loops (made
// at the first connection that can use one), else on a goroutine of its
// own. The caller has counted the reader in st.readers.
func (st *stage) read(c *client) {
	st.rxOnce.Do(func() { st.rx = newRxLoops() })
	if len(st.rx) > 0 && st.rx[int(c.acct.id%int64(len(st.rx)))].add(c) {
		return
	}
	go c.readLoop()
}

// closeReaders stops the loops once every connection is closed: each
// connection still on one is done reading.
func (st *stage) closeReaders() {
	st.rxOnce.Do(func() {})
	for _, l := range st.rx {
		l.close()
	}
}

// newRxLoops starts one loop per processor; nil if epoll is refused (the
// clients then get a reader goroutine each).
func newRxLoops() []*rxLoop {
	var loops []*rxLoop
	for range runtime.GOMAXPROCS(0) {
		l, err := newRxLoop()
		if err != nil {
			logf("reading with a goroutine per connection: %v", err)
			for _, l := range loops {
				l.close()
			}
			return nil
		}
		loops = append(loops, l)
	}
	return loops
}

func newRxLoop() (*rxLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll non-blocking: %w", err)
	}
	l := &rxLoop{epfd: epfd, f: os.NewFile(uintptr(epfd), "epoll"), regs: map[uint64]*rxReg{}, done: make(chan struct{})}
	if l.ep, err = l.f.SyscallConn(); err != nil {
		l.f.Close()
		return nil, fmt.Errorf("epoll in Go's poller: %w", err)
	}
	go l.run()
	return l, nil
}

// add reads c's current connection from now on; false when it cannot
// (not a stamped socket), for the caller to read it otherwise.
func (l *rxLoop) add(c *client) bool {
	sc, ok := c.conn.(*stampedConn)
	if !ok {
		return false
	}
	r := &rxReg{c: c, sc: sc, buf: make([]byte, 0, rxBufSize)}
	// What the greeting's reader holds came first, then what the
	// handshake's reader held beyond it; handled before the loop can
	// see the socket, so one goroutine at a time touches r.
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		r.buf = append(r.buf, b...)
	}
	r.buf, sc.pre, c.br = append(r.buf, sc.pre...), nil, nil
	if err := r.frames(); err != nil {
		go r.ended(err)
		return true
	}
	// Under mu, as every change to the set: close closes it only after.
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.dead.Store(true)
		c.st.readers.Done()
		return true
	}
	l.next++
	r.id = l.next
	var cerr error
	err := sc.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(uint32(r.id)), Pad: int32(uint32(r.id >> 32))}
		cerr = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err == nil {
		l.regs[r.id] = r
	}
	l.mu.Unlock()
	if err != nil {
		go r.ended(fmt.Errorf("epoll add: %w", err))
	}
	return true
}

func (l *rxLoop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		var err error
		rerr := l.ep.Read(func(fd uintptr) bool {
			n, err = unix.EpollWait(int(fd), events, 0)
			return n > 0 || err != nil
		})
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || rerr != nil {
			return // closed
		}
		for i := range events[:n] {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			l.mu.Lock()
			r := l.regs[id]
			l.mu.Unlock()
			if r != nil {
				l.readable(r)
			}
		}
	}
}

// readable reads what r's socket holds, once (the set is level-triggered,
// so bytes left over are reported again), and handles every whole frame.
func (l *rxLoop) readable(r *rxReg) {
	r.buf = slices.Grow(r.buf, rxBufSize)
	n, err := r.sc.readNow(r.buf[len(r.buf):cap(r.buf)])
	if errors.Is(err, unix.EAGAIN) {
		return
	}
	if err == nil {
		r.buf = r.buf[:len(r.buf)+n]
		err = r.frames()
	}
	if err != nil {
		l.end(r, err)
	}
}

// frames handles every whole frame in r.buf and keeps the rest; an error
// (a close frame, a frame too large) ends the connection.
func (r *rxReg) frames() error {
	rest := r.buf
	for {
		fin, op, payload, n, err := parseFrame(rest)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if err := r.c.onFrame(fin, op, payload, &r.inFrag); err != nil {
			return err
		}
		rest = rest[n:]
	}
	switch {
	case len(rest) == len(r.buf):
	case cap(r.buf) > rxBufSize && len(rest) <= rxBufSize/2:
		r.buf = append(make([]byte, 0, rxBufSize), rest...)
	default:
		r.buf = r.buf[:copy(r.buf, rest)]
	}
	return nil
}

// end stops reading r's connection, which ended with err, unless the
// loop's close got there first.
func (l *rxLoop) end(r *rxReg, err error) {
	l.mu.Lock()
	_, mine := l.regs[r.id]
	delete(l.regs, r.id)
	if mine && !l.closed {
		_ = r.sc.raw.Control(func(fd uintptr) { _ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
	}
	l.mu.Unlock()
	if mine {
		go r.ended(err)
	}
}

// ended counts the end of r's connection and, with -reconnect, redials
// and reads the new connection.
func (r *rxReg) ended(err error) {
	if r.c.ended(err) {
		r.c.st.read(r.c)
		return
	}
	r.c.st.readers.Done()
}

// close stops the loop and, once it stopped, ends the reading of every
// connection still on it.
func (l *rxLoop) close() {
	l.mu.Lock()
	l.closed = true
	l.f.Close()
	l.mu.Unlock()
	<-l.done
	l.mu.Lock()
	regs := l.regs
	l.regs = map[uint64]*rxReg{}
	l.mu.Unlock()
	for _, r := range regs {
		r.c.dead.Store(true)
		r.c.st.readers.Done()
	}
}
