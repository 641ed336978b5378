package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"moim/internal/apiclient"
)

// Pushes and mentions (-push-subs, -push-away, -mentions): the workload
// the club features add to chat, so a run can compare the node with them
// and without (scripts/pushbench.sh). Users register Web Push
// subscriptions through POST /api/push/subscriptions, the route the web
// client's service worker uses, with endpoints on a loopback HTTP sink
// the generator serves; the node posts there only with
// MOIM_PUSH_LOOPBACK=true. The notifier pushes to members with no live
// connection, so connected subscribers only make their rooms watched
// (each room's messages gathered, its members and their presence looked
// up every window) while away members are the ones pushes are encrypted
// and posted for.

// pushSink is the push service the node posts to: it answers 201, as
// push services do, and counts what arrived; it does not decrypt (the
// push package's tests prove the encryption).
type pushSink struct {
	srv  *http.Server
	addr string
	// awayPrefix starts the away users' names (PREFIXa).
	awayPrefix string
	// pushes counts every post; urgent the ones sent with Urgency: high
	// (a message naming the recipient); connected the ones for a user
	// who is not an away user, which the node should not send while the
	// user is connected.
	pushes, urgent, connected atomic.Int64
}

// sinkCounts is the sink's counters at one moment.
type sinkCounts struct{ pushes, urgent, connected int64 }

func (s *pushSink) counts() sinkCounts {
	return sinkCounts{s.pushes.Load(), s.urgent.Load(), s.connected.Load()}
}

// startPushSink listens on addr (host:port; port 0 picks one); away
// users' names start with awayPrefix.
func startPushSink(addr, awayPrefix string) (*pushSink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("push sink: listen on %s: %w", addr, err)
	}
	s := &pushSink{addr: ln.Addr().String(), awayPrefix: awayPrefix}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("push sink: %v", err)
		}
	}()
	return s, nil
}

func (s *pushSink) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "push sink takes POST", http.StatusMethodNotAllowed)
		return
	}
	// The body is read to its end so the node's connection is reused.
	_, _ = io.Copy(io.Discard, r.Body)
	s.pushes.Add(1)
	if r.Header.Get("Urgency") == "high" {
		s.urgent.Add(1)
	}
	if !strings.HasPrefix(strings.TrimPrefix(r.URL.Path, "/push/"), s.awayPrefix) {
		s.connected.Add(1)
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *pushSink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// endpoint is user name's push endpoint: the same for every run with the
// same -push-sink address, so a later run's subscription replaces the
// earlier one (the server keys subscriptions by endpoint) instead of
// leaving it behind, dead.
func (s *pushSink) endpoint(name string) string {
	return "http://" + s.addr + "/push/" + name
}

// subscribe registers a's push subscription with fresh browser-like keys
// (an uncompressed P-256 public key and a 16-byte auth secret).
func (lg *loadgen) subscribe(ctx context.Context, a *account) error {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("push key: %w", err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	body := map[string]any{
		"endpoint": lg.sink.endpoint(a.name),
		"keys": map[string]string{
			"p256dh": base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
			"auth":   base64.RawURLEncoding.EncodeToString(auth),
		},
	}
	err = withRetry(ctx, func() error {
		return lg.do(ctx, http.MethodPost, "/api/push/subscriptions", a.token, body, nil)
	})
	if apiclient.StatusOf(err) == http.StatusBadRequest {
		return fmt.Errorf("subscribe %s to pushes (start the node with MOIM_PUSH_LOOPBACK=true so it takes the loopback sink %s): %w", a.name, lg.sink.addr, err)
	}
	if err != nil {
		return fmt.Errorf("subscribe %s to pushes: %w", a.name, err)
	}
	a.subscribed = true
	return nil
}

// ensureAway signs up (or logs in) and subscribes the first n away
// users, PREFIXa00001…: room members who never connect, so every message
// in their rooms is pushed to them. Earlier stages' are reused.
func (lg *loadgen) ensureAway(ctx context.Context, n int) ([]*account, error) {
	have := len(lg.away)
	if have >= n {
		return lg.away[:n], nil
	}
	fresh := make([]*account, n-have)
	start := time.Now()
	failed, err := parallel(ctx, len(fresh), lg.o.setupConc, func(i int) error {
		a, _, err := lg.signIn(ctx, fmt.Sprintf("%sa%05d", lg.o.prefix, have+i+1))
		if err != nil {
			return err
		}
		if err := lg.subscribe(ctx, a); err != nil {
			return err
		}
		fresh[i] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%d of %d away users failed; the first: %w", failed, len(fresh), err)
	}
	lg.away = append(lg.away, fresh...)
	logf("away users %sa%05d…%sa%05d subscribed to pushes in %.1fs", lg.o.prefix, 1, lg.o.prefix, n, time.Since(start).Seconds())
	return lg.away[:n], nil
}

// mentionTarget picks the member c's next message names: any other
// member of c's room, connected or away, alike; "" in a room of one.
func (c *client) mentionTarget(pick int) string {
	r := c.room
	others := len(r.members) - 1 + len(r.away)
	if others <= 0 {
		return ""
	}
	k := pick % others
	if k < len(r.away) {
		return r.away[k].name
	}
	k -= len(r.away)
	for _, m := range r.members {
		if m == c {
			continue
		}
		if k == 0 {
			return m.acct.name
		}
		k--
	}
	return ""
}

var (
	mentionsKey = []byte(`"mentions":[`)
	fromKey     = []byte(`,"from":`)
)

// ownMention reports whether msg frame p is the receiving user's own
// message with mentions the node resolved: counted once per message,
// at its sender. Keys are matched with their quotes, which a body's
// escaped quotes cannot fake.
func (c *client) ownMention(p []byte) bool {
	if !bytes.Contains(p, mentionsKey) {
		return false
	}
	i := bytes.Index(p, fromKey)
	if i < 0 {
		return false
	}
	from, _ := leadingInt(p[i+len(fromKey):])
	return from == c.acct.id
}

// pushResult is a stage's pushes and mentions.
type pushResult struct {
	// SubscribedOnline counts the stage's connected users with a push
	// subscription; Away the subscribed members who never connect.
	SubscribedOnline int `json:"subscribed_online"`
	Away             int `json:"away_users"`
	// Pushes the sink received from the stage's set-up to the end of its
	// drain and -push-wait (the warm-up's included; a window still open
	// then is not);
	// Urgent of them were sent for a message naming the recipient.
	Pushes int64 `json:"pushes_received"`
	Urgent int64 `json:"urgent_pushes"`
	// ToConnected of them went to users the generator keeps connected
	// (-push-subs); the node pushes only to members who are away, so
	// this stays 0 while they are.
	ToConnected int64 `json:"pushes_to_connected"`
	// MentionsSent counts sent bodies naming a member; MentionsResolved
	// those delivered back to their sender carrying mentions.
	MentionsSent     int64 `json:"mentions_sent"`
	MentionsResolved int64 `json:"mentions_resolved"`
}

func (p *pushResult) String() string {
	return fmt.Sprintf("%d received (%d urgent, %d to connected users) for %d away and %d connected subscribers; mentions %d sent, %d resolved",
		p.Pushes, p.Urgent, p.ToConnected, p.Away, p.SubscribedOnline, p.MentionsSent, p.MentionsResolved)
}
