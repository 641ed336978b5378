package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"moim/internal/apiclient"

	"github.com/gobwas/ws/wsutil"
)

// Storm shape: 100 users in 10 rooms, 10 devices each, all dropping and
// redialing at once, twice, 6 s apart.
const (
	stormUsers   = 100
	stormDevices = 10
	stormRoom    = 10
	stormRounds  = 2
	stormGap     = 6 * time.Second
)

// storm runs a slow consumer (a member of every loadgen room that asks
// for whole histories and never reads) and a reconnect storm of 1000
// connections while loadgen measures everyone else.
type storm struct {
	slow  stormUser
	users []stormUser
	conns []*stormConn

	slowDials   atomic.Int64
	slowSyncs   atomic.Int64
	redialsOK   atomic.Int64
	redialsFail atomic.Int64
}

type stormUser struct {
	id    int64
	token string
	room  int64
}

// stormConn is one storm device; its reader discards what it gets.
type stormConn struct {
	user *stormUser
	url  string
	mu   sync.Mutex
	conn net.Conn
	done chan struct{}
}

// api calls the REST API of base.
func api(ctx context.Context, method, base, path, token string, body, out any) error {
	return (&apiclient.Client{Base: base, Token: token, HTTP: httpClient}).Do(ctx, method, path, body, out)
}

// signup creates a user and logs in.
func signup(ctx context.Context, base, name string) (stormUser, error) {
	c := &apiclient.Client{Base: base, HTTP: httpClient}
	if _, err := c.Signup(ctx, name, "chaos-password", name); err != nil {
		return stormUser{}, err
	}
	if err := c.Login(ctx, name, "chaos-password"); err != nil {
		return stormUser{}, err
	}
	return stormUser{id: c.ID, token: c.Token}, nil
}

func (s *storm) prepare(ctx context.Context, b *bed) ([]string, error) {
	base := b.nodes[0].url
	var err error
	if s.slow, err = signup(ctx, base, "chaos_slow"); err != nil {
		return nil, fmt.Errorf("slow consumer: %w", err)
	}
	s.users = make([]stormUser, stormUsers)
	errs := make(chan error, stormUsers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range s.users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			u, err := signup(ctx, b.nodes[i%len(b.nodes)].url, fmt.Sprintf("chaos_storm%03d", i))
			if err != nil {
				errs <- err
			}
			s.users[i] = u
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("storm users: %w", err)
	}
	for r := 0; r < stormUsers; r += stormRoom {
		ids := []int64{}
		for _, u := range s.users[r+1 : r+stormRoom] {
			ids = append(ids, u.id)
		}
		var room struct {
			ID int64 `json:"id"`
		}
		if err := api(ctx, http.MethodPost, base, "/api/rooms", s.users[r].token, map[string]any{"name": "storm", "member_ids": ids}, &room); err != nil {
			return nil, fmt.Errorf("storm room: %w", err)
		}
		for i := r; i < r+stormRoom; i++ {
			s.users[i].room = room.ID
		}
		// Half the rooms get a first message, half never have one: a sync
		// of either must be answered from Redis (a storm of syncs into
		// idle rooms once went to the message store and stalled every
		// node: docs/BENCHMARKS.md, "Chaos under load").
		if (r/stormRoom)%2 == 1 {
			continue
		}
		msg := map[string]any{"cid": "storm-first", "body": "hello"}
		if err := api(ctx, http.MethodPost, base, fmt.Sprintf("/api/rooms/%d/messages", room.ID), s.users[r].token, msg, nil); err != nil {
			return nil, fmt.Errorf("storm room's first message: %w", err)
		}
	}
	for i := range s.users {
		for d := range stormDevices {
			s.conns = append(s.conns, &stormConn{user: &s.users[i], url: b.nodes[(i*stormDevices+d)%len(b.nodes)].url})
		}
	}
	if n := s.dialAll(ctx); n > 0 {
		return nil, fmt.Errorf("%d of %d storm connections failed to open", n, len(s.conns))
	}
	return []string{"-also-members", strconv.FormatInt(s.slow.id, 10)}, nil
}

// dial opens the device's WebSocket, asks for its room's history (as a
// reconnecting client does) and starts a reader that discards frames.
func (c *stormConn) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, br, err := apiclient.DialURL(ctx, apiclient.WSURL(c.url, c.user.token), apiclient.DialOptions{})
	if err != nil {
		return err
	}
	req := fmt.Appendf(nil, `{"type":"sync","rooms":{"%d":0}}`, c.user.room)
	if err := wsutil.WriteClientText(conn, req); err != nil {
		conn.Close()
		return err
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	c.mu.Lock()
	c.conn, c.done = conn, make(chan struct{})
	done := c.done
	c.mu.Unlock()
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, bufio.NewReader(r))
	}()
	return nil
}

// drop closes the device's connection and waits for its reader.
func (c *stormConn) drop() {
	c.mu.Lock()
	conn, done := c.conn, c.done
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
		<-done
	}
}

// dialAll dials every device at once and counts the failures.
func (s *storm) dialAll(ctx context.Context) int {
	var failed atomic.Int64
	var wg sync.WaitGroup
	for _, c := range s.conns {
		wg.Go(func() {
			if err := c.dial(ctx); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// slowConsumer connects as the slow user with a 4 KiB receive buffer,
// never reads, and every 200 ms asks for the whole history of every
// room: the node's queue for it overflows and the node closes it. It
// redials and goes on until stop closes.
func (s *storm) slowConsumer(ctx context.Context, base string, rooms []int64, stop <-chan struct{}) {
	req := map[string]int64{}
	for _, r := range rooms {
		req[strconv.FormatInt(r, 10)] = 0
	}
	frame, _ := json.Marshal(map[string]any{"type": "sync", "rooms": req})
	smallBuffer := apiclient.DialOptions{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	for {
		conn, _, err := apiclient.DialURL(ctx, apiclient.WSURL(base, s.slow.token), smallBuffer)
		if err == nil {
			s.slowDials.Add(1)
			for {
				_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
				if wsutil.WriteClientText(conn, frame) != nil {
					break
				}
				s.slowSyncs.Add(1)
				select {
				case <-stop:
					conn.Close()
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
			conn.Close()
		}
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *storm) fault(ctx context.Context, b *bed, rep *report) error {
	var list struct {
		Rooms []struct {
			ID int64 `json:"id"`
		} `json:"rooms"`
	}
	if err := api(ctx, http.MethodGet, b.nodes[0].url, "/api/rooms", s.slow.token, nil, &list); err != nil {
		return fmt.Errorf("slow consumer's rooms: %w", err)
	}
	var rooms []int64
	for _, r := range list.Rooms {
		rooms = append(rooms, r.ID)
	}
	stop := make(chan struct{})
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		s.slowConsumer(ctx, b.nodes[0].url, rooms[:min(len(rooms), 200)], stop)
	}()
	var took []float64
	for round := range stormRounds {
		if round > 0 {
			if err := sleepCtx(ctx, stormGap); err != nil {
				break
			}
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, c := range s.conns {
			wg.Go(c.drop)
		}
		wg.Wait()
		failed := s.dialAll(ctx)
		s.redialsOK.Add(int64(len(s.conns) - failed))
		s.redialsFail.Add(int64(failed))
		took = append(took, secs(time.Since(start)))
	}
	_ = sleepCtx(ctx, 2*time.Second)
	close(stop)
	<-slowDone
	closes := 0.0
	for _, n := range b.nodes {
		v, err := metric(ctx, n.url, "moim_hub_slow_consumer_closes_total")
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		closes += v
	}
	rep.Fault["storm_connections"] = len(s.conns)
	rep.Fault["storm_rounds_s"] = took
	rep.Fault["storm_redials_failed"] = s.redialsFail.Load()
	rep.Fault["slow_consumer_rooms"] = len(rooms)
	rep.Fault["slow_consumer_dials"] = s.slowDials.Load()
	rep.Fault["slow_consumer_syncs_sent"] = s.slowSyncs.Load()
	rep.Fault["slow_consumer_closes"] = closes
	return nil
}

func (s *storm) after(_ context.Context, _ *bed, lg *lgResult, rep *report) {
	want := int64(stormRounds * len(s.conns))
	rep.check("the storm reconnected", s.redialsOK.Load() == want, "%d of %d redials", s.redialsOK.Load(), want)
	closes, _ := rep.Fault["slow_consumer_closes"].(float64)
	rep.check("the slow consumer was cut off", closes >= 1, "%.0f slow-consumer closes", closes)
	p99 := -1.0
	if lg.Fault != nil && lg.Fault.Latency.Count > 0 {
		p99 = lg.Fault.Latency.P99
	}
	rep.check("others' p99 ≤ 1 s during the storm", p99 >= 0 && p99 <= 1000, "%.0f ms", p99)
}

func (s *storm) cleanup() {
	var wg sync.WaitGroup
	for _, c := range s.conns {
		wg.Go(c.drop)
	}
	wg.Wait()
}
