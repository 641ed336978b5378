package rawio

import (
	"bytes"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// newRing is a ring for a test. Where io_uring is not allowed the node
// writes socket by socket and these tests skip, except in CI, whose
// machines have it.
func newRing(t *testing.T) *Ring {
	t.Helper()
	r, err := NewRing()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// One Send puts each socket's buffer in it (a fanout's frame for most,
// the frame and an ack for the sender), and the ring serves the next
// Send as well.
func TestRingSendsEachSocketItsBuffer(t *testing.T) {
	r := newRing(t)
	var fds []int32
	var peers []int
	for range 5 {
		a, b := socketpair(t)
		fds = append(fds, int32(a))
		peers = append(peers, b)
	}
	for round, msg := range []string{"first frame", "second, longer frame"} {
		bufs := make([][]byte, len(fds)-round)
		for i := range bufs {
			bufs[i] = []byte(msg)
		}
		bufs[1] = []byte(msg + " and its ack")
		res, err := r.Send(fds[round:], bufs)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != len(bufs) {
			t.Fatalf("round %d: %d results for %d sockets", round, len(res), len(bufs))
		}
		for i, n := range res {
			if int(n) != len(bufs[i]) {
				t.Fatalf("round %d, socket %d: sent %d of %d bytes", round, i, n, len(bufs[i]))
			}
			buf := make([]byte, 64)
			got, err := unix.Read(peers[round+i], buf)
			if err != nil || string(buf[:got]) != string(bufs[i]) {
				t.Fatalf("round %d, socket %d read %q, %v; want %q", round, i, buf[:max(got, 0)], err, bufs[i])
			}
		}
	}
}

// An empty buffer is written to nobody and answers 0, as write(2) of
// nothing does, beside a socket that gets bytes.
func TestRingSendOfNothingAnswersZero(t *testing.T) {
	r := newRing(t)
	a, b := socketpair(t)
	c, d := socketpair(t)
	res, err := r.Send([]int32{int32(a), int32(c), int32(b)}, [][]byte{nil, []byte("x"), {}})
	if err != nil || len(res) != 3 || res[0] != 0 || res[1] != 1 || res[2] != 0 {
		t.Fatalf("Send of nothing beside one byte: %v, %v; want [0 1 0]", res, err)
	}
	buf := make([]byte, 4)
	if n, err := unix.Read(d, buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("the socket given one byte read %q, %v", buf[:max(n, 0)], err)
	}
	if n, err := unix.Read(b, buf); err != unix.EAGAIN {
		t.Fatalf("a socket given nothing read %d bytes (%v)", n, err)
	}
}

// A socket that takes no more answers at once, as write(2) does: part
// of the buffer, then EAGAIN, never a wait; what it took arrives whole.
func TestRingSendToAFullSocketIsPartialThenEAGAIN(t *testing.T) {
	r := newRing(t)
	a, b := socketpair(t)
	if err := unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	var took []byte
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatalf("a 4 KiB send buffer took %d bytes and still no EAGAIN", len(took))
		}
		res, err := r.Send([]int32{int32(a)}, [][]byte{chunk})
		if err != nil {
			t.Fatal(err)
		}
		if res[0] == -int32(unix.EAGAIN) {
			break
		}
		if res[0] < 0 {
			t.Fatalf("send: errno %d", -res[0])
		}
		took = append(took, chunk[:res[0]]...)
	}
	if len(took) == 0 {
		t.Fatal("the socket took nothing before EAGAIN")
	}
	var read []byte
	buf := make([]byte, 1<<16)
	for len(read) < len(took) {
		n, err := unix.Read(b, buf)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", len(read), len(took), err)
		}
		read = append(read, buf[:n]...)
	}
	if !bytes.Equal(read, took) {
		t.Fatal("the socket's bytes are not the prefixes the sends reported")
	}
	if n, err := unix.Read(b, buf); err != unix.EAGAIN {
		t.Fatalf("%d bytes past what the sends reported (%v)", n, err)
	}
}

// A socket whose peer is gone fails with its errno, without a SIGPIPE,
// and the other sockets of the same Send still get their bytes.
func TestRingSendReportsEachSocketsError(t *testing.T) {
	r := newRing(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := fds[0]
	t.Cleanup(func() { unix.Close(a) })
	if err := unix.Close(fds[1]); err != nil {
		t.Fatal(err)
	}
	c, d := socketpair(t)
	res, err := r.Send([]int32{int32(a), int32(c)}, [][]byte{[]byte("hello"), []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != -int32(unix.EPIPE) {
		t.Fatalf("to a closed peer: %d, want -EPIPE", res[0])
	}
	buf := make([]byte, 16)
	if n, err := unix.Read(d, buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("the other socket read %q, %v", buf[:max(n, 0)], err)
	}
}
