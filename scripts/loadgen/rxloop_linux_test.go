package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// TestLoopReadsFramesAsTheyComeInPieces plays a node over loopback TCP
// whose frames reach the generator's loop in any cut: one already in the
// greeting's reader, one a byte at a time, then in cuts of 3001 bytes one
// bigger than a read, one with a 64-bit length, a message in two
// fragments and a ping between them.
// Every message is counted once and in order, the ping is answered, and
// the server's close ends the connection, counted with its code, and the
// client's reading.
func TestLoopReadsFramesAsTheyComeInPieces(t *testing.T) {
	msg := func(seq int, pad int) []byte {
		return fmt.Appendf(nil, `{"type":"msg","room":7,"seq":%d,"from":43,"body":"lg 1 lg-1-%d %s","cid":"lg-1-%d","ts":1}`,
			seq, seq, strings.Repeat("x", pad), seq)
	}
	first := make(chan struct{})
	ponged := make(chan string, 1)
	conn := scriptedNode(t, func(c net.Conn) {
		_ = wsutil.WriteServerText(c, msg(1, 0))
		<-first
		for _, b := range ws.MustCompileFrame(ws.NewTextFrame(msg(2, 0))) {
			_, _ = c.Write([]byte{b})
			time.Sleep(time.Millisecond)
		}
		// The rest in cuts that fall inside frames, each read ending
		// a frame and starting the next.
		whole := msg(5, 10)
		var rest []byte
		for _, f := range []ws.Frame{
			ws.NewTextFrame(msg(3, 3*rxBufSize)), ws.NewTextFrame(msg(4, 70000)),
			ws.NewFrame(ws.OpText, false, whole[:20]), ws.NewPingFrame([]byte("are you there")),
			ws.NewFrame(ws.OpContinuation, true, whole[20:]),
		} {
			rest = append(rest, ws.MustCompileFrame(f)...)
		}
		for len(rest) > 0 {
			n := min(len(rest), 3001)
			_, _ = c.Write(rest[:n])
			rest = rest[n:]
			time.Sleep(time.Millisecond)
		}
		f, err := ws.ReadFrame(c)
		if err != nil || f.Header.OpCode != ws.OpPong {
			ponged <- fmt.Sprintf("%v %v", f.Header.OpCode, err)
			return
		}
		ponged <- string(ws.UnmaskFrame(f).Payload)
		_ = ws.WriteFrame(c, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
		time.Sleep(time.Second)
	})
	_, st, c := roomOfTwo()
	defer st.closeAll()
	hs := bufio.NewReader(conn)
	if _, err := hs.Peek(1); err != nil {
		t.Fatal(err)
	}
	sc, br := stampReads(conn, hs)
	if _, ok := sc.(*stampedConn); !ok {
		t.Fatal("no receive timestamps on a loopback socket")
	}
	c.install(sc, br)
	st.readers.Add(1)
	st.read(c)
	if len(st.rx) == 0 {
		t.Fatal("no loop took the connection")
	}
	close(first)
	done := make(chan struct{})
	go func() { st.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's close did not end the client's reading")
	}
	if p := <-ponged; p != "are you there" {
		t.Errorf("the ping was answered with %q", p)
	}
	for seq := int64(1); seq <= 5; seq++ {
		if n := c.count(seq); n != 1 {
			t.Errorf("message %d counted %d times, want once", seq, n)
		}
	}
	if n := st.outOfOrder.Load(); n != 0 {
		t.Errorf("%d messages out of order", n)
	}
	if n := st.errs.snapshot()["closed_1000"]; n != 1 {
		t.Errorf("the close counted %d times (errors %v), want once", n, st.errs.snapshot())
	}
	if !c.dead.Load() {
		t.Error("the client is not marked dead after the close")
	}
}
