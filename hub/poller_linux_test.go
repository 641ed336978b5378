package hub

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A connection readable while the only worker is busy waits for it, and
// the worker that takes it says how long: admission counts that wait as
// lag, since frames left in the sockets show up in no other sample.
func TestPollerReportsTheWaitForAWorker(t *testing.T) {
	const hold = 300 * time.Millisecond
	type handled struct {
		c      *Conn
		waited time.Duration
	}
	got := make(chan handled, 2)
	p, err := newPoller(1, func(c *Conn, waited time.Duration) {
		got <- handled{c, waited}
		time.Sleep(hold) // the one worker is busy with this connection
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	var conns [2]*Conn
	for i := range conns {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
		conns[i] = &Conn{id: uint64(i + 1), fd: fds[0]}
		if err := p.add(conns[i]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.remove(conns[i]) })
		if _, err := unix.Write(fds[1], []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	first, second := <-got, <-got
	if first.c == second.c {
		t.Fatal("one connection handed to the worker twice without a re-arm")
	}
	if first.waited > hold/2 {
		t.Errorf("the first connection waited %v for an idle worker", first.waited)
	}
	if second.waited < hold*3/4 {
		t.Errorf("a connection queued behind a worker busy for %v reported a wait of %v", hold, second.waited)
	}
}

// Bytes that arrive while a worker handles a connection are read before
// it lets the connection go (the poller is edge-triggered: it reports
// them once, while the worker has the connection), and no connection is
// ever handled by two workers at once.
func TestBytesArrivingWhileHandledAreRead(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	var mu sync.Mutex
	var got []byte
	var active atomic.Int32
	twice := make(chan struct{}, 1)
	p, err := newPoller(2, func(c *Conn, _ time.Duration) {
		if active.Add(1) > 1 {
			twice <- struct{}{}
		}
		for {
			var buf [16]byte
			for {
				n, err := unix.Read(c.fd, buf[:])
				if err != nil || n <= 0 {
					break
				}
				mu.Lock()
				got = append(got, buf[:n]...)
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond) // bytes arrive meanwhile
			active.Add(-1)
			if !c.release() {
				return
			}
			active.Add(1)
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	c := &Conn{id: 1, fd: fds[0]}
	if err := p.add(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.remove(c) })
	const want = 30
	for i := range want {
		if _, err := unix.Write(fds[1], []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%4) * 3 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes: bytes that arrived while the connection was handled were left unread", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-twice:
		t.Fatal("one connection handled by two workers at once")
	default:
	}
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("byte %d is %d: read out of order", i, b)
		}
	}
}
