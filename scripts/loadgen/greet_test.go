package main

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
)

// TestGreetWaitsUntilTheNodeReadsFrames plays a node over loopback TCP
// that joins the user's rooms slowly after "ready" (PROTOCOL.md section
// 1): a message another member sent meanwhile comes before the answer to
// the client's first frame. The generator must not count the client live
// at ready: it pings, keeps reading until the pong, and counts what came
// before it as delivered.
func TestGreetWaitsUntilTheNodeReadsFrames(t *testing.T) {
	pinged := make(chan string, 1)
	conn := scriptedNode(t, func(c net.Conn) {
		_ = wsutil.WriteServerText(c, []byte(`{"type":"ready","user":42,"node":"n"}`))
		// Joining: the member's message is published before the join
		// completes and the client's ping is read.
		time.Sleep(50 * time.Millisecond)
		_ = wsutil.WriteServerText(c, []byte(`{"type":"msg","room":7,"seq":1,"from":43,"body":"lg 1 lg-1-1","cid":"lg-1-1","ts":1}`))
		p, err := wsutil.ReadClientText(c)
		if err != nil {
			pinged <- err.Error()
			return
		}
		pinged <- string(p)
		_ = wsutil.WriteServerText(c, []byte(`{"type":"pong"}`))
		time.Sleep(time.Second)
	})
	lg, _, c := roomOfTwo()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := lg.tgt.greet(c, conn, bufio.NewReader(conn)); err != nil {
		t.Fatalf("greet: %v", err)
	}
	select {
	case p := <-pinged:
		if p != `{"type":"ping"}` {
			t.Errorf("the client's first frame %q, want a ping", p)
		}
	default:
		t.Fatal("greet returned before the node answered a frame: the client counted live before the join")
	}
	if n := c.count(1); n != 1 {
		t.Errorf("the message sent during the join counted %d times, want once", n)
	}
}
