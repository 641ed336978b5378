package hub

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gatherHub is a hub with admission, a running gatherer and a poller, and one
// connection of it over real loopback TCP; it returns the client's end.
func gatherHub(t *testing.T) (*Hub, *Conn, *net.TCPConn) {
	t.Helper()
	h, conns, clients := loopbackHub(t, Config{}, 1)
	return h, conns[0], clients[0]
}

// loopbackHub is a hub with cfg (an 8 MiB write queue and a 10 s write
// timeout unless cfg says otherwise), admission, a running gatherer and
// a poller, and n connections of it over real loopback TCP, with their
// clients' ends.
func loopbackHub(t *testing.T, cfg Config, n int) (*Hub, []*Conn, []*net.TCPConn) {
	t.Helper()
	if cfg.WriteQueueBytes == 0 {
		cfg.WriteQueueBytes = 8 << 20
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	h := &Hub{cfg: cfg, log: slog.New(slog.DiscardHandler),
		metrics: newMetrics(prometheus.NewRegistry()), adm: newAdmission(250*time.Millisecond, prometheus.NewRegistry())}
	h.gather = newGatherer(h.adm)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.gather.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := newPoller(1, func(*Conn, time.Duration) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	h.poller = p
	var conns []*Conn
	var clients []*net.TCPConn
	for i := range n {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		srv, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		c, err := h.newConn(srv.(*net.TCPConn), int64(i+1), "a")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		clients = append(clients, client.(*net.TCPConn))
	}
	return h, conns, clients
}

// readText reads n text frames from the client's end within d.
func readText(t *testing.T, r *bufio.Reader, conn net.Conn, n int, d time.Duration) []string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	var got []string
	for len(got) < n {
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", len(got), n, err)
		}
		got = append(got, string(f.Payload))
	}
	return got
}

func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// numbered is frames from to to, each with a size-byte pad, and their
// payloads.
func numbered(from, to int, size int) (frames [][]byte, want []string) {
	for i := from; i < to; i++ {
		p := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", size))
		frames = append(frames, textFrame([]byte(p)))
		want = append(want, p)
	}
	return frames, want
}

// While the node is behind, frames to a connection are held and written
// together after gatherDelay, in the order written; once the node has
// caught up a frame still waits behind what is held (it must not
// overtake it), and after that one goes straight to the socket.
func TestFramesHeldWhileBehindArriveInOrder(t *testing.T) {
	h, c, client := gatherHub(t)
	r := bufio.NewReader(client)
	h.adm.judge(time.Second) // a window past the limit: the share halves
	if !h.adm.behind() {
		t.Fatal("admission not behind after a window past its limit")
	}
	frames, want := numbered(0, 3, 10)
	start := time.Now()
	for _, f := range frames[:2] {
		c.write(f)
	}
	for h.adm.behind() {
		h.adm.judge(0) // windows within the limit: the share grows back to all
	}
	c.write(frames[2])

	if got := readText(t, r, client, 3, 10*time.Second); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The gatherer compares wall clock readings, time.Since the monotonic
	// one: a little slack for the two.
	if waited := time.Since(start); waited < gatherDelay-5*time.Millisecond {
		t.Fatalf("frames written while behind arrived after %v, before gatherDelay (%v)", waited, gatherDelay)
	}
	if n := counted(t, h.metrics.framesHeld); n != 3 {
		t.Fatalf("%v frames counted held, want 3", n)
	}

	frames, want = numbered(3, 4, 10)
	c.write(frames[0])
	if got := readText(t, r, client, 1, 10*time.Second); got[0] != want[0] {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := counted(t, h.metrics.framesHeld); n != 3 {
		t.Fatalf("%v frames counted held after the node caught up, want still 3", n)
	}
}

// More held than one writev takes (iovMax buffers) and than the socket
// takes at once: the rest goes to the connection's flusher, and the
// client still reads every frame once, in order.
func TestHeldFramesPastOneWritevAllArrive(t *testing.T) {
	h, c, client := gatherHub(t)
	h.adm.judge(time.Second)
	frames, want := numbered(0, 3*iovMax, 1000) // 3 MB: past the socket buffers
	for _, f := range frames {
		c.write(f)
	}
	got := readText(t, bufio.NewReader(client), client, len(want), 30*time.Second)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frame %d: got %.20q, want %.20q", i, got[i], want[i])
		}
	}
}

// A connection closed while it holds frames gets them before the close
// frame, as it would have had the node not been behind.
func TestCloseWritesHeldFramesFirst(t *testing.T) {
	h, c, client := gatherHub(t)
	h.adm.judge(time.Second)
	frames, want := numbered(0, 2, 10)
	for _, f := range frames {
		c.write(f)
	}
	h.closeConn(c, ws.StatusGoingAway, "bye")
	r := bufio.NewReader(client)
	if got := readText(t, r, client, 2, 10*time.Second); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q, want %q", got, want)
	}
	f, err := ws.ReadFrame(r)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("after the held frames: %+v, %v; want the close frame", f.Header, err)
	}
}
