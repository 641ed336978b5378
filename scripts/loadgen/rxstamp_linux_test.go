package main

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// A message the generator reads late keeps the time it reached the
// socket; what the handshake's reader held is read first.
func TestReceiveTimesSplitTheGeneratorsWait(t *testing.T) {
	written := make(chan [2]int64, 1)
	stamping := make(chan struct{})
	conn := scriptedNode(t, func(c net.Conn) {
		_, _ = c.Write([]byte("hello"))
		<-stamping
		// The kernel starts stamping a moment after the first socket
		// asks (a deferred switch).
		time.Sleep(50 * time.Millisecond)
		before := time.Now().UnixNano()
		_, _ = c.Write([]byte("world"))
		written <- [2]int64{before, time.Now().UnixNano()}
		time.Sleep(time.Second)
	})
	hs := bufio.NewReader(conn)
	if b, err := hs.ReadByte(); err != nil || b != 'h' {
		t.Fatalf("first byte %q, %v", b, err)
	}
	if hs.Buffered() != len("ello") {
		t.Fatalf("the handshake's reader holds %d bytes, want 4", hs.Buffered())
	}
	sc, br := stampReads(conn, hs)
	close(stamping)
	w := <-written
	time.Sleep(100 * time.Millisecond) // the generator busy elsewhere
	got := make([]byte, len("elloworld"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "elloworld" {
		t.Fatalf("read %q, %v: want the buffered bytes, then the socket's", got, err)
	}
	read := time.Now().UnixNano()
	at := receivedAt(sc)
	if at < w[0] || at > w[1] {
		t.Fatalf("received at %d, want between the write's start %d and end %d", at, w[0], w[1])
	}
	if read-at < int64(100*time.Millisecond) {
		t.Errorf("read %v after it arrived, want the 100ms the reader was away", time.Duration(read-at))
	}
}
