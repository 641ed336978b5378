package rawio

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// Writev sends its buffers in order, skipping empty ones, and leaves
// none of them referenced by the scratch space; Read gets them back,
// then EAGAIN once the socket is empty.
func TestWritevThenRead(t *testing.T) {
	a, b := socketpair(t)
	bufs := [][]byte{[]byte("ack "), nil, []byte("msg "), {}, []byte("msg")}
	n, iovs, err := Writev(uintptr(a), bufs, nil)
	if err != nil || n != 11 {
		t.Fatalf("writev: %d, %v", n, err)
	}
	if len(iovs) != 3 {
		t.Fatalf("%d iovecs for 3 non-empty buffers", len(iovs))
	}
	for i, v := range iovs {
		if v.Base != nil || v.Len != 0 {
			t.Fatalf("iovec %d still points at a buffer", i)
		}
	}
	buf := make([]byte, 32)
	if n, err = Read(uintptr(b), buf); err != nil || string(buf[:n]) != "ack msg msg" {
		t.Fatalf("read %q, %v", buf[:max(n, 0)], err)
	}
	if _, err = Read(uintptr(b), buf); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read of an empty socket: %v, want EAGAIN", err)
	}
	if n, _, err = Writev(uintptr(a), [][]byte{nil}, iovs); n != 0 || err != nil {
		t.Fatalf("writev of nothing: %d, %v", n, err)
	}
}

// EpollWait reports a watched socket once it is readable, with the data
// EpollCtl registered, and nothing before.
func TestEpollWaitReportsReadiness(t *testing.T) {
	a, b := socketpair(t)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	if err := EpollCtl(ep, unix.EPOLL_CTL_ADD, b, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 42}); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 4)
	if n, err := EpollWait(uintptr(ep), events); n != 0 || err != nil {
		t.Fatalf("nothing written yet: %d events, %v", n, err)
	}
	if _, err := Write(uintptr(a), []byte("x")); err != nil {
		t.Fatal(err)
	}
	n, err := EpollWait(uintptr(ep), events)
	if err != nil || n != 1 || events[0].Fd != 42 {
		t.Fatalf("after a write: %d events (%+v), %v", n, events[:max(n, 0)], err)
	}
	if err := EpollCtl(ep, unix.EPOLL_CTL_MOD, 12345, &unix.EpollEvent{}); !errors.Is(err, unix.EBADF) {
		t.Fatalf("epoll_ctl of a closed descriptor: %v, want EBADF", err)
	}
}

// WriteAt writes all of b at the offset, over what was there and past the
// end (leaving a hole), large writes whole, and reports a descriptor it
// cannot write with os's error.
func TestWriteAtWritesAtTheOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for _, w := range []struct {
		b   string
		off int64
	}{{"journal", 0}, {"NAL!", 4}, {"x", 12}, {string(big), 13}} {
		if n, err := WriteAt(f, []byte(w.b), w.off); n != len(w.b) || err != nil {
			t.Fatalf("write of %d bytes at %d: %d, %v", len(w.b), w.off, n, err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("jourNAL!\x00\x00\x00\x00x"), big...); !bytes.Equal(got, want) {
		t.Fatalf("file holds %q... (%d bytes), want %q... (%d)", got[:16], len(got), want[:16], len(want))
	}
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	n, err := WriteAt(ro, []byte("no"), 0)
	var pe *os.PathError
	if n != 0 || !errors.As(err, &pe) || !errors.Is(err, unix.EBADF) {
		t.Fatalf("write to a read-only file: %d, %v", n, err)
	}
}
