//go:build linux

package hub

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"moim/chatlog"
)

// Benchmarks of the hub's hot path:
//
//	go test -bench . -benchmem -run '^$' ./hub
//
// Draft, TextFrame and ParseFrame are pure CPU. Fanout writes one
// compiled frame to N real loopback TCP sockets through Conn.write, as
// deliver does, and reports ns per delivered frame.

// benchBody is about 100 bytes of Korean and ASCII, like a chat message.
const benchBody = "오늘 저녁 7시 강남역 2번 출구에서 만나요! Bring the slides (v2) and 노트북 👍"

// Sinks keep the compiler from discarding results.
var (
	sinkDraft *chatlog.Draft
	sinkBytes []byte
)

func benchDraft() *chatlog.Draft {
	return chatlog.NewDraft(42, 1001, "김민지 (Minji)", benchBody, "c-01J9Z3K7Q8R2M4N6P0S5T7V9WX", chatlog.KindText, 0, 1_735_000_000_000)
}

// benchPayload is the JSON of one msg event, as fan-out frames it.
func benchPayload() []byte {
	d := benchDraft()
	p := append([]byte(nil), d.Head...)
	p = append(p, "123456"...)
	return append(p, d.Tail...)
}

func BenchmarkDraft(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		sinkDraft = benchDraft()
	}
	b.StopTimer()
	b.ReportMetric(float64(len(benchBody)), "body-bytes")
}

func BenchmarkTextFrame(b *testing.B) {
	payload := benchPayload()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for range b.N {
		sinkBytes = textFrame(payload)
	}
	b.StopTimer()
	b.ReportMetric(float64(len(payload)), "payload-bytes")
}

// maskedClientFrame is a client "send" text frame of about 200 bytes of
// payload, masked as a browser sends it.
func maskedClientFrame(tb testing.TB) (frame, payload []byte) {
	payload = []byte(`{"type":"send","room":42,"cid":"c-01J9Z3K7Q8R2M4N6P0S5T7V9WX","body":"` + benchBody + `","reply_to":987654321}`)
	p := append([]byte(nil), payload...) // masking ciphers p in place
	frame, err := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewFrame(ws.OpText, true, p)))
	if err != nil {
		tb.Fatal(err)
	}
	// Sanity check, outside any timing: the frame parses back to payload.
	h, got, n, err := parseFrame(append([]byte(nil), frame...))
	if err != nil || n != len(frame) || h.OpCode != ws.OpText || !h.Fin || !bytes.Equal(got, payload) {
		tb.Fatalf("parseFrame(masked frame) = %+v, %q, %d, %v", h, got, n, err)
	}
	return frame, payload
}

// BenchmarkParseFrame/parse measures parseFrame alone: parseFrame unmasks
// in place, so each iteration parses a fresh copy from a batch refilled
// with the timer stopped. BenchmarkParseFrame/copy+parse times the copy of
// the frame into a buffer and the parse together, as a cross-check.
func BenchmarkParseFrame(b *testing.B) {
	frame, payload := maskedClientFrame(b)
	fl := len(frame)

	b.Run("parse", func(b *testing.B) {
		const batch = 1024
		buf := make([]byte, batch*fl)
		refill := func() {
			for i := range batch {
				copy(buf[i*fl:], frame)
			}
		}
		refill()
		b.ReportAllocs()
		b.SetBytes(int64(fl))
		b.ResetTimer()
		for i := range b.N {
			j := i % batch
			if j == 0 && i > 0 {
				b.StopTimer()
				refill()
				b.StartTimer()
			}
			_, p, n, err := parseFrame(buf[j*fl : (j+1)*fl])
			if err != nil || n != fl {
				b.Fatalf("parseFrame: n=%d err=%v", n, err)
			}
			sinkBytes = p
		}
		b.StopTimer()
		b.ReportMetric(float64(len(payload)), "payload-bytes")
	})

	b.Run("copy+parse", func(b *testing.B) {
		buf := make([]byte, fl)
		b.ReportAllocs()
		b.SetBytes(int64(fl))
		b.ResetTimer()
		for range b.N {
			copy(buf, frame)
			_, p, n, err := parseFrame(buf)
			if err != nil || n != fl {
				b.Fatalf("parseFrame: n=%d err=%v", n, err)
			}
			sinkBytes = p
		}
		b.StopTimer()
		b.ReportMetric(float64(len(payload)), "payload-bytes")
	})
}

// benchHub is the least of a Hub that Conn.write needs: cfg for the queue
// limit and write timeout, metrics, a logger, and a real (idle) poller and
// maps so that drop and closeConn would work if a write ever failed.
func benchHub(b *testing.B) *Hub {
	cfg := Config{NodeID: "bench"}
	cfg.defaults()
	p, err := newPoller(1, func(*Conn, time.Duration) {}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.close)
	return &Hub{
		cfg:     cfg,
		adm:     newAdmission(250*time.Millisecond, prometheus.NewRegistry()),
		log:     slog.New(slog.DiscardHandler),
		metrics: newMetrics(prometheus.NewRegistry()),
		poller:  p,
		conns:   map[*Conn]struct{}{},
		users:   map[int64]*local{},
		rooms:   map[int64]map[*Conn]struct{}{},
	}
}

// fanoutPool is n server-side Conns over loopback TCP, each with its
// client end drained by a goroutine so that writes do not back up.
type fanoutPool struct {
	conns   []*Conn
	clients []*net.TCPConn
	ln      net.Listener
	drained sync.WaitGroup
	once    sync.Once
}

// ensureFDs makes sure the process may open need more descriptors,
// raising the soft RLIMIT_NOFILE up to the hard one if it must.
func ensureFDs(b *testing.B, need uint64) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("getrlimit(RLIMIT_NOFILE): %v", err)
	}
	const slack = 256 // the test binary's own descriptors
	if lim.Cur >= need+slack {
		return
	}
	if lim.Max >= need+slack {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
			return
		}
	}
	b.Skipf("RLIMIT_NOFILE is %d (hard %d): %d sockets need about %d descriptors", lim.Cur, lim.Max, need, need+slack)
}

func newFanoutPool(b *testing.B, h *Hub, n int) *fanoutPool {
	ensureFDs(b, uint64(2*n))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	fp := &fanoutPool{ln: ln}
	b.Cleanup(fp.close)
	for i := range n {
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		client := cc.(*net.TCPConn)
		fp.clients = append(fp.clients, client)
		sc, err := ln.Accept()
		if err != nil {
			b.Fatalf("accept %d: %v", i, err)
		}
		tcp := sc.(*net.TCPConn)
		c, err := h.newConn(tcp, int64(i+1), "bench")
		if err != nil {
			_ = tcp.Close()
			b.Fatalf("conn %d: %v", i, err)
		}
		fp.conns = append(fp.conns, c)
		fp.drained.Add(1)
		go func() {
			defer fp.drained.Done()
			_, _ = io.Copy(io.Discard, client)
		}()
	}
	return fp
}

// close shuts the server sides first, so every drainer sees EOF after
// reading what was sent, then the client sides and the listener.
func (fp *fanoutPool) close() {
	fp.once.Do(func() {
		for _, c := range fp.conns {
			c.mu.Lock()
			c.closed = true
			c.mu.Unlock()
			_ = c.tcp.Close()
		}
		fp.drained.Wait()
		for _, cl := range fp.clients {
			_ = cl.Close()
		}
		_ = fp.ln.Close()
	})
}

// check fails the benchmark if a connection was closed during the run
// (a failed write or an overflowing queue), since later writes to it
// would be skipped and look cheap, and logs how many are behind.
func (fp *fanoutPool) check(b *testing.B) {
	closed, behind := 0, 0
	for _, c := range fp.conns {
		c.mu.Lock()
		if c.closed {
			closed++
		}
		if c.flushing || c.queued > 0 {
			behind++
		}
		c.mu.Unlock()
	}
	if closed > 0 {
		b.Fatalf("%d of %d connections were closed during the run", closed, len(fp.conns))
	}
	if behind > 0 {
		b.Logf("%d of %d connections had frames queued (slow path) at the end of the run", behind, len(fp.conns))
	}
}

// BenchmarkFanout measures what deliver does per event once it has the
// room's connections: frame the payload once, then write the same bytes
// to every recipient, through the ring (one io_uring call for them all)
// or a write(2) each (plain). ns/delivery is the time per recipient.
func BenchmarkFanout(b *testing.B) {
	payload := benchPayload()
	for _, n := range []int{10, 100, 1000} {
		h := benchHub(b)
		fp := newFanoutPool(b, h, n)
		for _, plain := range []bool{false, true} {
			mode := "ring"
			if plain {
				mode = "plain"
			}
			b.Run(fmt.Sprintf("recipients=%d/%s", n, mode), func(b *testing.B) {
				h.cfg.PlainWrites = plain
				f := &fanout{h: h, targets: fp.conns}
				defer f.closeRing()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					own := parseOwn(1, payload)
					f.write(textFrame(payload), &own)
				}
				b.StopTimer()
				if !plain && f.ring == nil {
					b.Skip("io_uring is not allowed here")
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
				fp.check(b)
			})
		}
		fp.close()
	}
}
