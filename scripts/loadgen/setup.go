package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"moim/internal/apiclient"
)

// account is one generator user, kept across stages.
type account struct {
	name  string
	id    int64
	token string
	// subscribed: the user has a push subscription (-push-subs,
	// -push-away).
	subscribed bool
}

// room is one room of a stage: members[0] created it.
type room struct {
	id      int64
	channel string // the room's channel on Centrifugo (-target centrifugo)
	members []*client
	// away are members who never connect (-push-away): not measured,
	// pushed to.
	away []*account
	warm chan frame // the warm-up message's ack or error
	// maxAcked is the highest seq acked in the room so far.
	maxAcked atomic.Int64

	mu sync.Mutex
	// seqOf is the seq each cid was acked or delivered with; conflicts
	// are the cids seen with two seqs: one message stored twice.
	seqOf     map[string]int64
	conflicts map[string]bool
}

// noteCID checks that cid always comes with the same seq.
func (r *room) noteCID(cid []byte, seq int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, ok := r.seqOf[string(cid)]
	switch {
	case !ok:
		r.seqOf[string(cid)] = seq
	case prev != seq:
		r.conflicts[string(cid)] = true
	}
}

// noteAcked raises maxAcked to seq.
func (r *room) noteAcked(seq int64) {
	for {
		m := r.maxAcked.Load()
		if seq <= m || r.maxAcked.CompareAndSwap(m, seq) {
			return
		}
	}
}

// warmed hands the warm-up's answer to whoever waits for it.
func (r *room) warmed(f frame) {
	select {
	case r.warm <- f:
	default:
	}
}

// retryable reports whether a failed request may succeed when repeated.
func retryable(err error) bool {
	if status := apiclient.StatusOf(err); status != 0 {
		return status >= 500 || status == http.StatusTooManyRequests
	}
	return !errors.Is(err, context.Canceled)
}

// api is a client of the next -url (each attempt of a REST request goes
// to the next, so one dead node does not fail it).
func (lg *loadgen) api(token string) *apiclient.Client {
	base := lg.o.bases[int(lg.nextBase.Add(1)%uint64(len(lg.o.bases)))]
	return &apiclient.Client{Base: base.String(), Token: token, HTTP: lg.http}
}

// do sends a JSON request to the next -url and decodes a 2xx JSON answer
// into out; any other status is an *apiclient.Error.
func (lg *loadgen) do(ctx context.Context, method, path, token string, body, out any) error {
	return lg.api(token).Do(ctx, method, path, body, out)
}

// withRetry runs f up to three times while its error is retryable (each
// attempt of a REST request goes to the next -url, so one dead node does
// not fail it).
func withRetry(ctx context.Context, f func() error) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 300 * time.Millisecond):
			}
		}
		if err = f(); err == nil || !retryable(err) {
			return err
		}
	}
	return err
}

// parallel runs f(i) for i in [0, n) on conc goroutines and returns the
// first error (the rest still run) and how many failed.
func parallel(ctx context.Context, n, conc int, f func(i int) error) (int, error) {
	var (
		next   atomic.Int64
		failed atomic.Int64
		mu     sync.Mutex
		first  error
		wg     sync.WaitGroup
	)
	for range min(conc, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					failed.Add(1)
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return int(failed.Load()), first
}

// ensureAccounts signs up (or finds) and logs in the first n generator
// users; earlier stages' logins are reused.
func (lg *loadgen) ensureAccounts(ctx context.Context, n int) ([]*account, error) {
	have := len(lg.accounts)
	if have >= n {
		return lg.accounts[:n], nil
	}
	fresh := make([]*account, n-have)
	var created atomic.Int64
	start := time.Now()
	failed, err := parallel(ctx, len(fresh), lg.o.setupConc, func(i int) error {
		a, made, err := lg.signIn(ctx, fmt.Sprintf("%s%05d", lg.o.prefix, have+i+1))
		if err != nil {
			return err
		}
		if made {
			created.Add(1)
		}
		// Every Nth user, from the first, so each room of N or more has one.
		if n := lg.o.pushSubs; n > 0 && (have+i)%n == 0 {
			if err := lg.subscribe(ctx, a); err != nil {
				return err
			}
		}
		fresh[i] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%d of %d users failed; the first: %w", failed, len(fresh), err)
	}
	lg.accounts = append(lg.accounts, fresh...)
	logf("users %s%05d…%s%05d ready in %.1fs (%d signed up, %d existed)",
		lg.o.prefix, 1, lg.o.prefix, n, time.Since(start).Seconds(), created.Load(), int64(len(fresh))-created.Load())
	return lg.accounts[:n], nil
}

// signIn signs user name up (or finds it taken: an earlier run's user)
// and logs it in; created tells which.
func (lg *loadgen) signIn(ctx context.Context, name string) (*account, bool, error) {
	a := &account{name: name}
	created := false
	err := withRetry(ctx, func() error {
		_, err := lg.api("").Signup(ctx, a.name, lg.o.password, "Load "+a.name)
		if apiclient.StatusOf(err) == http.StatusConflict {
			return nil // username_taken: a earlier run's user, log in
		}
		if err == nil {
			created = true
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	var c *apiclient.Client
	err = withRetry(ctx, func() error {
		c = lg.api("")
		return c.Login(ctx, a.name, lg.o.password)
	})
	if err != nil {
		return nil, false, fmt.Errorf("an existing user with another password? use -prefix or -password: %w", err)
	}
	a.id, a.token = c.ID, c.Token
	return a, created, nil
}

// createRooms creates the stage's rooms, each by its first member with
// the others as member_ids.
func (lg *loadgen) createRooms(ctx context.Context, st *stage) error {
	start := time.Now()
	failed, err := parallel(ctx, len(st.rooms), lg.o.setupConc, func(i int) error {
		r := st.rooms[i]
		ids := make([]int64, 0, len(r.members)-1)
		for _, m := range r.members[1:] {
			ids = append(ids, m.acct.id)
		}
		for _, a := range r.away {
			ids = append(ids, a.id)
		}
		var view struct {
			ID int64 `json:"id"`
		}
		ids = append(ids, lg.o.alsoMembers...)
		err := withRetry(ctx, func() error {
			return lg.do(ctx, http.MethodPost, "/api/rooms", r.members[0].acct.token, map[string]any{
				"name":       fmt.Sprintf("loadgen %s stage %d room %d", lg.runID, st.n, i+1),
				"member_ids": ids,
			}, &view)
		})
		if err != nil {
			return fmt.Errorf("create room %d: %w", i+1, err)
		}
		if view.ID <= 0 {
			return fmt.Errorf("create room %d: answer has no id", i+1)
		}
		r.id = view.ID
		return nil
	})
	if err != nil {
		return fmt.Errorf("%d of %d rooms failed; the first: %w", failed, len(st.rooms), err)
	}
	logf("%d rooms of up to %d members created in %.1fs", len(st.rooms), lg.o.roomSize, time.Since(start).Seconds())
	return nil
}

// dial opens c's WebSocket to the node -url names at index node (modulo
// their number), from c's source address, greets the server until c is
// live (target.greet) and returns the connection and its reader; the
// caller installs them.
func (lg *loadgen) dial(ctx context.Context, c *client, node int) (net.Conn, *bufio.Reader, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, br, err := apiclient.DialURL(ctx, lg.tgt.wsURL(c, node), apiclient.DialOptions{Source: c.source})
	if err != nil {
		return nil, nil, err
	}
	// The server's first frames may have come with the handshake: br,
	// when not nil, holds them, and the reader returned starts with them.
	conn, br = stampReads(conn, br)
	if br == nil {
		br = bufio.NewReaderSize(conn, 4096)
	}
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	if err := lg.tgt.greet(c, conn, br); err != nil {
		conn.Close()
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, nil
}

// dialAll opens every client's WebSocket, conc dials in flight at once,
// and starts its reader.
func (lg *loadgen) dialAll(ctx context.Context, st *stage, conc int) error {
	start := time.Now()
	var done atomic.Int64
	bind := lg.o.sources > 1 && lg.o.bind
	failed, err := parallel(ctx, len(st.clients), conc, func(i int) error {
		c := st.clients[i]
		if bind {
			c.source = apiclient.SourceIP(i % lg.o.sources)
		}
		c.home = i % len(lg.o.bases)
		err := withRetry(ctx, func() error {
			conn, br, err := lg.dial(ctx, c, c.home)
			if err == nil {
				c.readyAt = time.Now().UnixNano()
				if st.storm != nil {
					st.storm.ready[c.room].Add(1)
				}
				c.install(conn, br)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("user %s: %w", c.acct.name, err)
		}
		st.readers.Add(1)
		st.read(c)
		if st.storm != nil {
			// Its answer says when the node reads this connection's frames.
			if err := c.writeRaw(appendClientFrame(nil, ws.OpText, pingPayload)); err != nil {
				st.errs.add("write")
			}
		}
		if n := done.Add(1); n%5000 == 0 {
			logf("%d WebSockets ready (%.1fs)", n, time.Since(start).Seconds())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%d of %d WebSockets failed; the first: %w", failed, len(st.clients), err)
	}
	src := "the default source address"
	if bind {
		src = fmt.Sprintf("%d source addresses 127.0.0.1…%s", lg.o.sources, apiclient.SourceIP(lg.o.sources-1))
	}
	nodes := ""
	if len(lg.o.bases) > 1 {
		nodes = fmt.Sprintf(", spread over %d nodes", len(lg.o.bases))
	}
	logf("%d WebSockets ready in %.1fs from %s%s", len(st.clients), time.Since(start).Seconds(), src, nodes)
	return nil
}
