package rawio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pair returns a Conn dialed to a loopback listener and the accepted end.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := Dial(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

// What a Redis client relies on: a write larger than the socket takes
// at once arrives whole and in order, a read returns what is there, the
// peer's close reads as io.EOF.
func TestConnMovesBytesBothWaysAndEndsWithEOF(t *testing.T) {
	c, peer := pair(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than the send buffer
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	n, err := c.Write(big)
	if err != nil || n != len(big) {
		t.Fatalf("write: %d of %d, %v", n, len(big), err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer read %d bytes, not what was written", len(b))
	}

	if _, err := peer.Write([]byte("+PONG\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err = c.Read(buf)
	if err != nil || string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}

	peer.Close()
	if n, err = c.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after the peer closed: %d, %v; want 0, io.EOF", n, err)
	}
}

// A read deadline ends a read with nothing to read as a timeout, the
// way go-redis tells a slow Redis from a broken connection.
func TestConnReadDeadlineIsATimeout(t *testing.T) {
	c, _ := pair(t)
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
}

// A closed Conn refuses reads and writes with net.ErrClosed.
func TestConnClosed(t *testing.T) {
	c, _ := pair(t)
	c.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

// Reads and writes from several goroutines at once, as a pub/sub
// connection's reader and pinger do.
func TestConnConcurrentWrites(t *testing.T) {
	c, peer := pair(t)
	const writers, each = 4, 1000
	done := make(chan error, writers)
	for w := range writers {
		go func() {
			msg := []byte{'a' + byte(w), '\n'}
			for range each {
				if _, err := c.Write(msg); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	b, err := io.ReadAll(io.LimitReader(peer, writers*each*2))
	if err != nil {
		t.Fatal(err)
	}
	for range writers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	counts := map[byte]int{}
	for i := 0; i < len(b); i += 2 {
		if b[i+1] != '\n' {
			t.Fatalf("writes interleaved at byte %d: %q", i, b[i:i+2])
		}
		counts[b[i]]++
	}
	for w := range writers {
		if counts['a'+byte(w)] != each {
			t.Fatalf("writer %d: %d messages arrived, want %d", w, counts['a'+byte(w)], each)
		}
	}
}
