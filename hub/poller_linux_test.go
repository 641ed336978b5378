package hub

import (
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
