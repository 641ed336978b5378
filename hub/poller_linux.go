//go:build linux

package hub

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"moim/internal/rawio"
)

// poller owns idle connections: one epoll instance watched by one
// goroutine, which hands a readable connection to a bounded pool of
// workers. Registration is edge-triggered: a connection is reported when
// new bytes arrive, and handed to a worker only if none has it (Conn.claim);
// otherwise the one that has it reads again before letting it go
// (Conn.release), so nothing is lost and no connection is read by two
// workers at once. One-shot registration did the same with an epoll_ctl
// to re-arm after every frame, one system call per message received
// (docs/BENCHMARKS.md, "Session 44").
type poller struct {
	epfd  int
	mu    sync.RWMutex
	conns map[uint64]*Conn
	work  chan readable
	// here, when set, handles the last connection of each readiness
	// batch on the loop's own goroutine and says whether to hand it to a
	// worker after all (Hub.handleHere).
	here func(c *Conn) bool
	wake int // eventfd that interrupts epoll_wait on close
	// ep is epfd in Go's own network poller: the loop parks there, as a
	// goroutine waiting for a socket does, instead of holding a thread in
	// epoll_wait that must win a processor back when it returns.
	ep syscall.RawConn
	f  *os.File
}

// readable is a connection the loop found readable, and when: the
// worker that takes it reports how long it waited for one.
type readable struct {
	c  *Conn
	at time.Time
}

func newPoller(workers int, handle func(c *Conn, waited time.Duration), here func(c *Conn) bool) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("hub: epoll_create: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("hub: eventfd: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("hub: epoll non-blocking: %w", err)
	}
	p := &poller{epfd: epfd, conns: map[uint64]*Conn{}, work: make(chan readable, workers*64), here: here, wake: wake}
	p.f = os.NewFile(uintptr(epfd), "epoll")
	if p.ep, err = p.f.SyscallConn(); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("hub: epoll in the runtime's poller: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("hub: watch eventfd: %w", err)
	}
	for range workers {
		go func() {
			for r := range p.work {
				handle(r.c, time.Since(r.at))
			}
		}()
	}
	go p.loop()
	return p, nil
}

const wakeID = 0 // connection ids start at 1

func (p *poller) loop() {
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		var err error
		rerr := p.ep.Read(func(fd uintptr) bool {
			n, err = rawio.EpollWait(fd, events)
			return n > 0 || err != nil
		})
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err == nil {
			err = rerr
		}
		if err != nil {
			close(p.work)
			return
		}
		now := time.Now()
		for i := range events[:n] {
			id := eventID(&events[i])
			if id == wakeID {
				close(p.work)
				p.closeFDs()
				return
			}
			p.mu.RLock()
			c := p.conns[id]
			p.mu.RUnlock()
			switch {
			case c == nil || !c.claim():
			case i == n-1 && p.here != nil:
				// The others are with workers already, on the other cores.
				if p.here(c) {
					p.work <- readable{c, time.Now()}
				}
			default:
				p.work <- readable{c, now}
			}
		}
	}
}

// The connection id travels in the event's 8 data bytes (Fd and Pad), so
// a reused file descriptor can never be mistaken for the old connection.
func eventID(ev *unix.EpollEvent) uint64 { return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32 }

func eventFor(id uint64) *unix.EpollEvent {
	return &unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     int32(uint32(id)),
		Pad:    int32(uint32(id >> 32)),
	}
}

// add starts watching c.
func (p *poller) add(c *Conn) error {
	p.mu.Lock()
	p.conns[c.id] = c
	p.mu.Unlock()
	if err := rawio.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, eventFor(c.id)); err != nil {
		p.remove(c)
		return fmt.Errorf("hub: epoll add: %w", err)
	}
	return nil
}

// remove stops watching c; it must be called before c's socket closes.
func (p *poller) remove(c *Conn) {
	p.mu.Lock()
	delete(p.conns, c.id)
	p.mu.Unlock()
	_ = rawio.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
}

// close stops the loop and the workers.
func (p *poller) close() {
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(p.wake, one[:])
}

func (p *poller) closeFDs() {
	_ = p.f.Close()
	unix.Close(p.wake)
}
