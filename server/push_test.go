package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"moim/push"
)

// pushService is a local push service (RFC 8030) for one test: each
// subscription it hands out has its own browser-side keys, and every push
// posted to it is decrypted with them (RFC 8291) and its VAPID token
// checked against the server's public key (RFC 8292) before the test sees
// it, so a push that arrives proves real encryption and signing.
type pushService struct {
	t      *testing.T
	srv    *httptest.Server
	vapid  []byte // the server's VAPID public key, uncompressed point
	mu     sync.Mutex
	subs   map[string]*pushSub
	got    chan pushed
	status int // answered to every post; 201 unless a test changes it
}

// pushSub is one browser's subscription: its keys and endpoint.
type pushSub struct {
	name     string
	key      *ecdh.PrivateKey
	auth     []byte
	endpoint string
}

// pushed is a push the service decrypted.
type pushed struct {
	sub     string
	topic   string
	urgency string
	payload map[string]any
}

func newPushService(t *testing.T, n *testNode) *pushService {
	var k struct {
		PublicKey string `json:"public_key"`
	}
	n.anon(t).must(200, "GET", "/api/push/vapid-key", nil, &k)
	vapid, err := base64.RawURLEncoding.DecodeString(k.PublicKey)
	if err != nil || len(vapid) != 65 {
		t.Fatalf("vapid-key %q is not a base64url P-256 point", k.PublicKey)
	}
	ps := &pushService{t: t, vapid: vapid, subs: map[string]*pushSub{}, got: make(chan pushed, 64), status: 201}
	ps.srv = httptest.NewServer(http.HandlerFunc(ps.serve))
	t.Cleanup(ps.srv.Close)
	return ps
}

// subscribe makes a subscription for c on this service and posts it.
func (ps *pushService) subscribe(c *client, name string) *pushSub {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		ps.t.Fatal(err)
	}
	s := &pushSub{name: name, key: key, auth: make([]byte, 16), endpoint: ps.srv.URL + "/push/" + name}
	_, _ = rand.Read(s.auth)
	ps.mu.Lock()
	ps.subs["/push/"+name] = s
	ps.mu.Unlock()
	c.must(201, "POST", "/api/push/subscriptions", s.body(), nil)
	return s
}

func (s *pushSub) body() map[string]any {
	return map[string]any{"endpoint": s.endpoint, "keys": map[string]string{
		"p256dh": base64.RawURLEncoding.EncodeToString(s.key.PublicKey().Bytes()),
		"auth":   base64.RawURLEncoding.EncodeToString(s.auth),
	}}
}

func (ps *pushService) serve(w http.ResponseWriter, r *http.Request) {
	ps.mu.Lock()
	s, status := ps.subs[r.URL.Path], ps.status
	ps.mu.Unlock()
	if s == nil {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if err := ps.checkVAPID(r.Header.Get("Authorization")); err != nil {
		ps.t.Errorf("push to %s: VAPID: %v", s.name, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" || r.Header.Get("TTL") == "" {
		ps.t.Errorf("push to %s: Content-Encoding %q, TTL %q", s.name, r.Header.Get("Content-Encoding"), r.Header.Get("TTL"))
	}
	plain, err := decryptPush(s.key, s.auth, body)
	if err != nil {
		ps.t.Errorf("push to %s: %v", s.name, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var p map[string]any
	if err := json.Unmarshal(plain, &p); err != nil {
		ps.t.Errorf("push to %s: payload %q: %v", s.name, plain, err)
	}
	w.WriteHeader(status)
	ps.got <- pushed{sub: s.name, topic: r.Header.Get("Topic"), urgency: r.Header.Get("Urgency"), payload: p}
}

// checkVAPID verifies "vapid t=<JWT>, k=<key>": k is the server's key,
// and the JWT is ES256-signed by it for this service's origin.
func (ps *pushService) checkVAPID(h string) error {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return fmt.Errorf("authorization %q is not vapid", h)
	}
	var token, key string
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if v, ok := strings.CutPrefix(part, "t="); ok {
			token = v
		}
		if v, ok := strings.CutPrefix(part, "k="); ok {
			key = v
		}
	}
	if k, err := base64.RawURLEncoding.DecodeString(key); err != nil || !bytes.Equal(k, ps.vapid) {
		return fmt.Errorf("k=%q is not the server's VAPID key", key)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("token %q is not a JWT", token)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return errors.New("signature is not 64 bytes of ES256")
	}
	x, y := elliptic.Unmarshal(elliptic.P256(), ps.vapid) //nolint:staticcheck // the key arrives as an uncompressed point
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("ES256 signature does not verify with the server's key")
	}
	var head struct{ Alg string }
	var claims struct {
		Aud string
		Exp int64
		Sub string
	}
	hj, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cj, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hj, &head) != nil || json.Unmarshal(cj, &claims) != nil {
		return errors.New("token header or claims are not JSON")
	}
	exp := time.Unix(claims.Exp, 0)
	switch {
	case head.Alg != "ES256":
		return fmt.Errorf("alg %q", head.Alg)
	case claims.Aud != ps.srv.URL:
		return fmt.Errorf("aud %q, want %q", claims.Aud, ps.srv.URL)
	case exp.Before(time.Now()) || exp.After(time.Now().Add(24*time.Hour)):
		return fmt.Errorf("exp %v not within 24 h", exp)
	case !strings.HasPrefix(claims.Sub, "mailto:") && !strings.HasPrefix(claims.Sub, "https:"):
		return fmt.Errorf("sub %q", claims.Sub)
	}
	return nil
}

// decryptPush opens an aes128gcm body (RFC 8188) with the keys RFC 8291
// derives from the subscription's private key and auth secret.
func decryptPush(ua *ecdh.PrivateKey, auth, body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("body shorter than the aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen {
		return nil, fmt.Errorf("keyid of %d bytes, want the 65-byte sender key", idlen)
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, fmt.Errorf("sender key: %w", err)
	}
	record := body[21+idlen:]
	if uint32(len(record)) > rs {
		return nil, fmt.Errorf("record of %d bytes exceeds rs %d", len(record), rs)
	}
	shared, err := ua.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), ua.PublicKey().Bytes()...), asPub.Bytes()...)
	prkKey, err := hkdf.Extract(sha256.New, shared, auth)
	if err != nil {
		return nil, err
	}
	ikm, err := hkdf.Expand(sha256.New, prkKey, string(info), 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 || plain[len(plain)-1] != 2 {
		return nil, errors.New("no last-record delimiter (0x02) after the padding")
	}
	return plain[:len(plain)-1], nil
}

// next waits for the next push.
func (ps *pushService) next(what string) pushed {
	ps.t.Helper()
	select {
	case p := <-ps.got:
		return p
	case <-time.After(15 * time.Second):
		ps.t.Fatalf("no push for %s", what)
		return pushed{}
	}
}

// none asserts nothing is pushed for a while (longer than the window).
func (ps *pushService) none(what string, wait time.Duration) {
	ps.t.Helper()
	select {
	case p := <-ps.got:
		ps.t.Fatalf("%s: got a push to %s: %v", what, p.sub, p.payload)
	case <-time.After(wait):
	}
}

// pushConfig is a test node that pushes to loopback after a short window.
func pushConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.PushLoopback = true
	cfg.PushWindow = 150 * time.Millisecond
	return cfg
}

// awaitOnline waits until the room's presence shows user online.
func awaitOnline(t *testing.T, c *client, room, user int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var p struct {
			Members []struct {
				UserID int64 `json:"user_id"`
				Online bool  `json:"online"`
			} `json:"members"`
		}
		c.must(200, "GET", urlf("/api/rooms/%d/presence", room), nil, &p)
		for _, m := range p.Members {
			if m.UserID == user && m.Online {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("user %d never showed online in room %d", user, room)
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func TestPushReachesAwayMembersOnly(t *testing.T) {
	n := startTestNode(t, pushConfig(t))
	ps := newPushService(t, n)
	alice, bob, carol := n.user(t, "Alice"), n.user(t, "Bob"), n.user(t, "Carol")
	room := alice.createRoom(map[string]any{"name": "등산 모임", "member_ids": []int64{bob.id, carol.id}})
	ps.subscribe(bob, "bob")
	ps.subscribe(carol, "carol")
	wc := n.connect(carol)
	awaitOnline(t, alice, room.ID, carol.id)

	// Bob is away, Carol is connected: only Bob's browser is pushed, once
	// for a burst, with the newest message and how many there were.
	wa := n.connect(alice)
	for i := range 5 {
		wa.say(room.ID, fmt.Sprintf("b%d", i), fmt.Sprintf("내일 7시 출발 %d", i))
	}
	p := ps.next("a message to away Bob")
	if p.sub != "bob" || p.payload["type"] != "message" || num(p.payload["room"]) != room.ID || p.payload["room_name"] != "등산 모임" ||
		p.payload["body"] != "내일 7시 출발 4" || p.payload["name"] != "Alice" || num(p.payload["count"]) != 5 ||
		p.payload["url"] != urlf("/#/room/%d", room.ID) || p.topic != urlf("room%d", room.ID) {
		t.Fatalf("push %+v", p)
	}
	ps.none("a burst is one push, and connected Carol gets none", 600*time.Millisecond)

	// Muted: nothing, unless the message names Bob.
	var v struct{ Muted bool }
	bob.must(200, "PUT", urlf("/api/rooms/%d/mute", room.ID), nil, &v)
	if !v.Muted {
		t.Fatal("PUT mute answered a room that is not muted")
	}
	var list struct {
		Rooms []struct {
			ID    int64
			Muted bool
		}
	}
	bob.must(200, "GET", "/api/rooms", nil, &list)
	if len(list.Rooms) != 1 || !list.Rooms[0].Muted {
		t.Fatalf("room list %+v does not show the room muted", list.Rooms)
	}
	wa.say(room.ID, "m1", "muted rooms stay quiet")
	ps.none("a muted room", 600*time.Millisecond)
	wa.say(room.ID, "m2", "@"+bob.username+" 회비 확인 부탁해요")
	p = ps.next("a mention in a muted room")
	if p.sub != "bob" || p.payload["mention"] != true || p.urgency != "high" || !strings.Contains(p.payload["body"].(string), "회비 확인") {
		t.Fatalf("mention push %+v", p)
	}
	bob.must(200, "DELETE", urlf("/api/rooms/%d/mute", room.ID), nil, &v)
	if v.Muted {
		t.Fatal("DELETE mute left the room muted")
	}
	n.user(t, "Eve").fails(403, "not_member", "PUT", urlf("/api/rooms/%d/mute", room.ID), nil)

	// Carol goes away: now she is pushed too.
	wc.conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		online, err := n.hub.Online(t.Context(), []int64{carol.id})
		if err != nil {
			t.Fatal(err)
		}
		if !online[carol.id] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Carol still online after closing her socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	wa.say(room.ID, "c1", "캐롤 어디 갔어요?")
	got := map[string]bool{ps.next("first away member").sub: true, ps.next("second away member").sub: true}
	if !got["bob"] || !got["carol"] {
		t.Fatalf("pushed %v, want bob and carol", got)
	}
}

func TestPushInvitationAndDuesReminder(t *testing.T) {
	n := startTestNode(t, pushConfig(t))
	ps := newPushService(t, n)
	owner, late, stranger := n.user(t, "Owner"), n.user(t, "Late"), n.user(t, "Stranger")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{late.id}})
	ps.subscribe(stranger, "stranger")
	ps.subscribe(late, "late")

	// Stranger does not have Owner as a contact: invited, and pushed.
	owner.must(200, "POST", urlf("/api/rooms/%d/members", room.ID), map[string]any{"user_ids": []int64{stranger.id}}, nil)
	p := ps.next("an invitation")
	if p.sub != "stranger" || p.payload["type"] != "invitation" || num(p.payload["room"]) != room.ID ||
		p.payload["room_name"] != "Club" || p.payload["name"] != "Owner" || num(p.payload["invitation"]) == 0 {
		t.Fatalf("invitation push %+v", p)
	}

	// A dues reminder reaches the unpaid member even in a muted room.
	late.must(200, "PUT", urlf("/api/rooms/%d/mute", room.ID), nil, nil)
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	owner.must(200, "PUT", rp+"/dues", map[string]any{"amount": 10000, "period": "monthly", "due_day": 31}, nil)
	owner.must(202, "POST", rp+"/dues/remind", nil, nil)
	for {
		p = ps.next("the dues reminder")
		if p.payload["fee"] == "reminder" {
			break
		}
	}
	if p.sub != "late" || p.payload["kind"] != "fee" || p.payload["mention"] != true || num(p.payload["room"]) != room.ID {
		t.Fatalf("reminder push %+v", p)
	}
}

func TestPushDropsGoneSubscriptionsAndRefusesUnsafeEndpoints(t *testing.T) {
	n := startTestNode(t, pushConfig(t))
	ps := newPushService(t, n)
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	ps.subscribe(bob, "bob")
	ps.mu.Lock()
	ps.status = http.StatusGone
	ps.mu.Unlock()
	alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "x1", "body": "hello"}, nil)
	ps.next("the push the service answers 410")
	deadline := time.Now().Add(10 * time.Second)
	for {
		subs, err := n.push.Subscriptions(t.Context(), bob.id)
		if err != nil {
			t.Fatal(err)
		}
		if len(subs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a subscription answered 410 is still kept: %+v", subs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Unsubscribe by endpoint; a second time is 404.
	s := ps.subscribe(bob, "bob2")
	bob.must(204, "DELETE", "/api/push/subscriptions", map[string]any{"endpoint": s.endpoint}, nil)
	bob.fails(404, "not_found", "DELETE", "/api/push/subscriptions", map[string]any{"endpoint": s.endpoint})

	keys := s.body()["keys"]
	for _, endpoint := range []string{
		"http://push.example.com/send/abc",         // not https
		"http://10.0.0.8/push",                     // private, and not https
		"https://10.0.0.8/push",                    // private
		"https://169.254.169.254/latest/meta-data", // cloud metadata
		"https://user:pw@push.example.com/x",
		"ftp://push.example.com/x",
		"/relative",
	} {
		bob.fails(400, "validation", "POST", "/api/push/subscriptions", map[string]any{"endpoint": endpoint, "keys": keys})
	}
	bob.fails(400, "validation", "POST", "/api/push/subscriptions", map[string]any{"endpoint": "https://push.example.com/x",
		"keys": map[string]string{"p256dh": "AAAA", "auth": "AAAA"}})
	n.anon(t).fails(401, "unauthorized", "POST", "/api/push/subscriptions", s.body())
}

// TestPushAcrossNodes: presence is the cluster's, so a member connected
// to the other node is not pushed, and nodes given one VAPID pair sign
// alike.
func TestPushAcrossNodes(t *testing.T) {
	base := pushConfig(t)
	if base.RedisURL == "" {
		t.Skip("several nodes need a shared Redis: the single-node engine runs one node")
	}
	keys, err := push.LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base.VAPIDPublicKey, base.VAPIDPrivateKey = keys.Public, keys.Private
	nodes := make([]*testNode, 2)
	for i := range nodes {
		cfg := base
		cfg.DataDir = t.TempDir()
		cfg.NodeID = fmt.Sprintf("node-%d", i)
		nodes[i] = startTestNode(t, cfg)
	}
	ps := newPushService(t, nodes[1])
	alice, bob, carol := nodes[0].user(t, "Alice"), nodes[0].user(t, "Bob"), nodes[1].user(t, "Carol")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id, carol.id}})
	ps.subscribe(bob, "bob")
	ps.subscribe(carol, "carol")
	nodes[1].connect(carol)
	awaitOnline(t, alice, room.ID, carol.id)
	wa := nodes[0].connect(alice)
	wa.say(room.ID, "x1", "node 0 speaking")
	if p := ps.next("a message from node 0"); p.sub != "bob" || p.payload["body"] != "node 0 speaking" {
		t.Fatalf("push %+v, want Bob's", p)
	}
	ps.none("Carol is connected to node 1", 600*time.Millisecond)

	// A subscription made on node 1 reaches node 0, which had nobody with
	// a subscription in Dave's room, within its reload of the rooms to
	// watch (about a second).
	dave := nodes[0].user(t, "Dave")
	quiet := alice.createRoom(map[string]any{"name": "Quiet", "member_ids": []int64{dave.id}})
	daveOn1 := *dave
	daveOn1.base = nodes[1].url
	ps.subscribe(&daveOn1, "dave")
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		wa.say(quiet.ID, fmt.Sprintf("q%d", i), "anyone there?")
		select {
		case p := <-ps.got:
			if p.sub != "dave" || num(p.payload["room"]) != quiet.ID {
				t.Fatalf("push %+v, want Dave's for room %d", p, quiet.ID)
			}
			return
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("node 0 never pushed to a subscription made on node 1")
		}
	}
}
