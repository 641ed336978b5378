package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"moim/limit"
)

var _ = alsoOn(onMemory, TestWebSocketRejectsBadTokensBeforeUpgrade)

func TestWebSocketRejectsBadTokensBeforeUpgrade(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	for _, tok := range []string{"", "garbage", "a.b.c"} {
		req, _ := http.NewRequest("GET", n.url+"/ws?token="+tok, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("token %q: status %d, want 401 before the upgrade", tok, resp.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, _, err := ws.Dial(ctx, n.wsURL()+"?token=nope"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("dial with a bad token: %v, want a 401 handshake failure", err)
	}
}

var _ = alsoOn(onMemory|onCluster, TestSendAckDeliverInOrder)

func TestSendAckDeliverInOrder(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob, carol := n.user(t, "Alice"), n.user(t, "Bob"), n.user(t, "Carol")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	wa, wb, wc := n.connect(alice), n.connect(bob), n.connect(carol)
	wa2 := n.connect(alice) // a second device
	// A sync answered means the connection has joined its rooms and hears
	// every later message live (docs/PROTOCOL.md, section 1).
	for _, w := range []*wsClient{wb, wa2} {
		w.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room.ID): 0}})
		w.await("synced")
	}

	for i := 1; i <= 20; i++ {
		ack := wa.say(room.ID, fmt.Sprintf("c%d", i), fmt.Sprintf("안녕 %d", i))
		if ack.Seq != int64(i) || ack.Room != room.ID || ack.CID != fmt.Sprintf("c%d", i) || ack.TS == 0 {
			t.Fatalf("ack %d = %+v", i, ack)
		}
	}
	for _, w := range []*wsClient{wb, wa2} {
		for i := 1; i <= 20; i++ {
			m := w.await("msg")
			if m.Seq != int64(i) || m.From != alice.id || m.Name != "Alice" || m.Body != fmt.Sprintf("안녕 %d", i) || m.Kind != "text" {
				t.Fatalf("user %d got %+v as message %d", w.user, m, i)
			}
		}
	}
	// Carol is not a member: she gets nothing and cannot send.
	wc.send(map[string]any{"type": "send", "room": room.ID, "cid": "x", "body": "hi"})
	if f := wc.next(); f.Type != "error" || f.Code != "not_member" || f.CID != "x" {
		t.Fatalf("non-member send got %+v", f)
	}
}

var _ = alsoOn(onMemory|onCluster, TestRetriedSendIsStoredOnce)

func TestRetriedSendIsStoredOnce(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	wa, wb := n.connect(alice), n.connect(bob)
	first := wa.say(room.ID, "same-cid", "once")
	again := wa.say(room.ID, "same-cid", "once")
	if first.Seq != again.Seq || first.TS != again.TS {
		t.Fatalf("retry acked %+v, first %+v: a retried cid must get the original seq", again, first)
	}
	next := wa.say(room.ID, "other-cid", "twice")
	if next.Seq != first.Seq+1 {
		t.Fatalf("next seq %d after %d", next.Seq, first.Seq)
	}
	if m := wb.await("msg"); m.Seq != first.Seq {
		t.Fatalf("got %+v", m)
	}
	if m := wb.await("msg"); m.Seq != next.Seq {
		t.Fatalf("the retried message was delivered twice: got %+v", m)
	}
}

var _ = alsoOn(onMemory, TestSendValidation)

func TestSendValidation(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})
	w := n.connect(alice)
	cases := []struct {
		frame string
		code  string
	}{
		{`{"type":"send","room":` + fmt.Sprint(room.ID) + `,"cid":"a","body":""}`, "validation"},
		{`{"type":"send","room":` + fmt.Sprint(room.ID) + `,"cid":"a","body":"` + strings.Repeat("가", 4001) + `"}`, "validation"},
		{`{"type":"send","room":` + fmt.Sprint(room.ID) + `,"cid":"","body":"x"}`, "validation"},
		{`{"type":"send","room":` + fmt.Sprint(room.ID) + `,"cid":"` + strings.Repeat("c", 65) + `","body":"x"}`, "validation"},
		{`{"type":"send","room":0,"cid":"a","body":"x"}`, "bad_request"},
		{`{"type":"send","room":999999,"cid":"a","body":"x"}`, "not_member"},
		{`{"type":"fly"}`, "bad_request"},
		{`not json`, "bad_request"},
		{`{"type":"sync","rooms":{"abc":1}}`, "bad_request"},
		{`{"type":"sync","rooms":{"999999":0}}`, "not_member"},
	}
	for _, tc := range cases {
		w.sendRaw([]byte(tc.frame))
		if f := w.await("error"); f.Code != tc.code {
			t.Fatalf("frame %.80s: got %+v, want error %s", tc.frame, f, tc.code)
		}
	}
	// The connection survived every request-level error.
	if ack := w.say(room.ID, "ok", "4000 자 "+strings.Repeat("가", 3990)); ack.Seq != 1 {
		t.Fatalf("after errors: %+v", ack)
	}
	w.send(map[string]any{"type": "ping"})
	w.await("pong")
}

var _ = alsoOn(onMemory|onCluster, TestSyncAfterReconnect)

func TestSyncAfterReconnect(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	wa, wb := n.connect(alice), n.connect(bob)
	wa.say(room.ID, "m1", "one")
	if m := wb.await("msg"); m.Seq != 1 {
		t.Fatal(m)
	}
	wb.conn.Close() // bob goes offline
	for i := 2; i <= 6; i++ {
		wa.say(room.ID, fmt.Sprintf("m%d", i), fmt.Sprintf("missed %d", i))
	}
	wb = n.connect(bob)
	wb.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room.ID): 1}})
	for i := 2; i <= 6; i++ {
		if m := wb.await("msg"); m.Seq != int64(i) || m.Body != fmt.Sprintf("missed %d", i) {
			t.Fatalf("sync gave %+v as %d", m, i)
		}
	}
	if s := wb.await("synced"); s.Room != room.ID || s.Seq != 6 {
		t.Fatalf("synced %+v", s)
	}
}

var _ = alsoOn(onMemory|onCluster, TestMembershipChangesReachLiveConnections)

func TestMembershipChangesReachLiveConnections(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Open club"})
	wa, wb := n.connect(alice), n.connect(bob)
	bob.must(200, "POST", urlf("/api/rooms/%d/join", room.ID), nil, nil)
	// Membership propagates through Redis; the next message reaches Bob.
	deadline := time.Now().Add(5 * time.Second)
	for seq := int64(1); ; seq++ {
		wa.say(room.ID, fmt.Sprint("j", seq), "welcome")
		if f, err := wb.read(300 * time.Millisecond); err == nil && f.Type == "msg" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a member who joined while connected never received the room's messages")
		}
		wb = n.connect(bob)
	}
	bob.must(204, "POST", urlf("/api/rooms/%d/leave", room.ID), nil, nil)
	time.Sleep(200 * time.Millisecond)
	wb.send(map[string]any{"type": "send", "room": room.ID, "cid": "after-leave", "body": "x"})
	if f := wb.await("error"); f.Code != "not_member" {
		t.Fatalf("send after leaving: %+v", f)
	}
}

// rawFrame writes one client frame with the given fin bit and opcode.
func (w *wsClient) rawFrame(fin bool, op ws.OpCode, payload []byte) {
	w.t.Helper()
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	f = ws.MaskFrameInPlace(f)
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_ = w.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteFrame(w.conn, f); err != nil {
		w.t.Fatalf("write frame: %v", err)
	}
}

var _ = alsoOn(onMemory, TestFrameLimitsCloseWithTheRightCode)

func TestFrameLimitsCloseWithTheRightCode(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice := n.user(t, "Alice")
	cases := []struct {
		name  string
		write func(w *wsClient)
		code  ws.StatusCode
	}{
		{"frame over 64 KiB", func(w *wsClient) { w.rawFrame(true, ws.OpText, make([]byte, 64<<10+1)) }, ws.StatusMessageTooBig},
		{"fragments over 64 KiB", func(w *wsClient) {
			w.rawFrame(false, ws.OpText, make([]byte, 40<<10))
			w.rawFrame(true, ws.OpContinuation, make([]byte, 30<<10))
		}, ws.StatusMessageTooBig},
		{"binary frame", func(w *wsClient) { w.rawFrame(true, ws.OpBinary, []byte{1, 2, 3}) }, ws.StatusUnsupportedData},
		{"invalid UTF-8", func(w *wsClient) { w.rawFrame(true, ws.OpText, []byte{'{', 0xff, 0xfe, '}'}) }, ws.StatusInvalidFramePayloadData},
		{"continuation without start", func(w *wsClient) { w.rawFrame(true, ws.OpContinuation, []byte("x")) }, ws.StatusProtocolError},
		{"client close is echoed", func(w *wsClient) {
			w.rawFrame(true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
		}, ws.StatusNormalClosure},
		{"client close 4000 is echoed", func(w *wsClient) {
			w.rawFrame(true, ws.OpClose, ws.NewCloseFrameBody(4000, "app"))
		}, 4000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alice.t = t
			w := n.connect(alice)
			tc.write(w)
			if got := w.closeCode(); got != tc.code {
				t.Fatalf("close code %d, want %d", got, tc.code)
			}
		})
	}
}

var _ = alsoOn(onMemory, TestFragmentsAndPingsAreHandled)

func TestFragmentsAndPingsAreHandled(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})
	w := n.connect(alice)
	msg := []byte(fmt.Sprintf(`{"type":"send","room":%d,"cid":"frag","body":"%s"}`, room.ID, strings.Repeat("조각", 1500)))
	// Three fragments with a ping between them, split mid-rune.
	w.rawFrame(false, ws.OpText, msg[:1001])
	w.rawFrame(true, ws.OpPing, []byte("are you there"))
	w.rawFrame(false, ws.OpContinuation, msg[1001:2003])
	w.rawFrame(true, ws.OpContinuation, msg[2003:])
	_ = w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		h, err := ws.ReadHeader(w.rw)
		if err != nil {
			t.Fatalf("waiting for pong: %v", err)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(w.rw, payload); err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpText { // presence and other events may come first
			continue
		}
		if h.OpCode != ws.OpPong || string(payload) != "are you there" {
			t.Fatalf("got %v %q, want the pong echoing the ping", h.OpCode, payload)
		}
		break
	}
	// The sender's own msg may overtake its ack: they travel separately.
	var ack, msgBack frameMsg
	for ack.Type == "" || msgBack.Type == "" {
		switch f := w.next(); f.Type {
		case "ack":
			ack = f
		case "msg":
			msgBack = f
		}
	}
	if ack.CID != "frag" || ack.Seq != 1 {
		t.Fatalf("ack %+v", ack)
	}
	if msgBack.Body != strings.Repeat("조각", 1500) {
		t.Fatalf("reassembled body differs (%d runes)", len([]rune(msgBack.Body)))
	}
}

var _ = alsoOn(onMemory, TestSlowReaderDoesNotSlowOthers)

// TestSlowReaderDoesNotSlowOthers fills a non-reading client's queue until
// it is closed with 1013 while a reading member keeps getting everything.
func TestSlowReaderDoesNotSlowOthers(t *testing.T) {
	cfg := testConfig(t)
	cfg.SendRate, cfg.SendBurst = 1e6, 1e6
	n := startTestNode(t, cfg)
	alice, bob, slow := n.user(t, "Alice"), n.user(t, "Bob"), n.user(t, "Slow")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id, slow.id}})
	ws := n.connect(slow)
	_ = ws // never reads again
	wb := n.connect(bob)
	wa := n.connect(alice)
	body := strings.Repeat("x", 3900)
	// 3,000 × ~4 KiB = 12 MiB: more than the socket buffers and the 1 MiB queue.
	const total = 3000
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			if _, err := wb.read(10 * time.Second); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 1; i <= total; i++ {
		wa.send(map[string]any{"type": "send", "room": room.ID, "cid": fmt.Sprint("s", i), "body": body})
		if i%50 == 0 {
			drainAcks(t, wa, 50)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the reading member stalled: %v", err)
	}
	status, raw := n.anon(t).raw("GET", "/metrics", nil)
	if status != 200 || !strings.Contains(string(raw), "moim_hub_slow_consumer_closes_total 1") {
		t.Fatalf("slow consumer not closed and counted:\n%s", grepLines(string(raw), "slow_consumer"))
	}
}

// drainAcks reads frames until n acks arrived (the sender also gets its
// own messages back).
func drainAcks(t *testing.T, w *wsClient, n int) {
	t.Helper()
	for n > 0 {
		f := w.next()
		switch f.Type {
		case "ack":
			n--
		case "error":
			t.Fatalf("error %s: %s", f.Code, f.Message)
		}
	}
}

var _ = alsoOn(onMemory|onCluster, TestPresenceReadsTypingAndUnread)

func TestPresenceReadsTypingAndUnread(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	type member struct {
		UserID int64 `json:"user_id"`
		Online bool  `json:"online"`
		Read   int64 `json:"read"`
	}
	members := func(c *client) []member {
		var p struct {
			Members []member `json:"members"`
		}
		c.must(200, "GET", urlf("/api/rooms/%d/presence", room.ID), nil, &p)
		return p.Members
	}
	presence := func(c *client) map[int64]bool {
		out := map[int64]bool{}
		for _, m := range members(c) {
			out[m.UserID] = m.Online
		}
		return out
	}
	if p := presence(alice); p[alice.id] || p[bob.id] || len(p) != 2 {
		t.Fatalf("nobody is connected, presence says %v", p)
	}
	n.user(t, "Eve").fails(403, "not_member", "GET", urlf("/api/rooms/%d/presence", room.ID), nil)

	wa := n.connect(alice)
	wb := n.connect(bob)
	if f := wa.await("presence"); f.User != alice.id && f.User != bob.id {
		t.Fatalf("presence event %+v", f)
	}
	if p := presence(alice); !p[alice.id] || !p[bob.id] {
		t.Fatalf("both connected, presence says %v", p)
	}

	for i := 1; i <= 3; i++ {
		wa.say(room.ID, fmt.Sprint("u", i), fmt.Sprint("message ", i))
	}
	unread := func(c *client) (int64, frameMsg) {
		var l struct {
			Rooms []struct {
				ID          int64    `json:"id"`
				Unread      *int64   `json:"unread"`
				LastMessage frameMsg `json:"last_message"`
			} `json:"rooms"`
		}
		c.must(200, "GET", "/api/rooms", nil, &l)
		if len(l.Rooms) != 1 || l.Rooms[0].Unread == nil {
			t.Fatalf("room list %+v", l)
		}
		return *l.Rooms[0].Unread, l.Rooms[0].LastMessage
	}
	if u, last := unread(bob); u != 3 || last.Seq != 3 || last.Body != "message 3" {
		t.Fatalf("bob: unread %d, last %+v; want 3 and message 3", u, last)
	}
	wb.send(map[string]any{"type": "read", "room": room.ID, "seq": 2})
	if f := wa.await("read"); f.User != bob.id || f.Seq != 2 {
		t.Fatalf("read receipt %+v", f)
	}
	if u, _ := unread(bob); u != 1 {
		t.Fatalf("after reading to 2 of 3, unread = %d", u)
	}
	wb.send(map[string]any{"type": "read", "room": room.ID, "seq": 1}) // never goes back
	if u, _ := unread(bob); u != 1 {
		t.Fatalf("a lower read position moved unread to %d", u)
	}
	// A client opening the room gets every member's read position too.
	reads := map[int64]int64{}
	for _, m := range members(alice) {
		reads[m.UserID] = m.Read
	}
	if reads[bob.id] != 2 || reads[alice.id] != 0 || len(reads) != 2 {
		t.Fatalf("read positions %v; want bob at 2, alice at 0", reads)
	}
	// A position past the room's newest message stops at it: 2^62 would
	// stick for good and is no number a JavaScript client can hold.
	wb.send(map[string]any{"type": "read", "room": room.ID, "seq": int64(1) << 62})
	if f := wa.await("read"); f.User != bob.id || f.Seq != 3 {
		t.Fatalf("read receipt past the newest message %+v, want seq 3", f)
	}
	if u, _ := unread(bob); u != 0 {
		t.Fatalf("after reading everything, unread = %d", u)
	}

	wb.send(map[string]any{"type": "typing", "room": room.ID})
	if f := wa.await("typing"); f.User != bob.id || f.Room != room.ID {
		t.Fatalf("typing %+v", f)
	}

	wb.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for presence(alice)[bob.id] {
		if time.Now().After(deadline) {
			t.Fatal("bob disconnected but stays online")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f := wa.await("presence"); f.User != bob.id || f.Online {
		t.Fatalf("offline event %+v", f)
	}
}

var _ = alsoOn(onMemory|onCluster, TestDeleteMessages)

func TestDeleteMessages(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, author, other := n.user(t, "Owner"), n.user(t, "Author"), n.user(t, "Other")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{author.id, other.id}})
	wo, wa, wx := n.connect(owner), n.connect(author), n.connect(other)
	first := wa.say(room.ID, "d1", "oops")
	second := wa.say(room.ID, "d2", "keep")

	wx.send(map[string]any{"type": "delete", "room": room.ID, "seq": first.Seq})
	if f := wx.await("error"); f.Code != "forbidden" {
		t.Fatalf("another member deleting: %+v", f)
	}
	wa.send(map[string]any{"type": "delete", "room": room.ID, "seq": first.Seq})
	if f := wo.await("deleted"); f.Seq != first.Seq || f.Room != room.ID {
		t.Fatalf("deleted event %+v", f)
	}
	wo.send(map[string]any{"type": "delete", "room": room.ID, "seq": second.Seq}) // admins may
	if f := wx.await("deleted"); f.Seq != first.Seq || f.By != author.id {
		t.Fatalf("first deleted event seen by another member: %+v", f)
	}
	if f := wx.await("deleted"); f.Seq != second.Seq || f.By != owner.id {
		t.Fatalf("admin delete: %+v", f)
	}
	wa.send(map[string]any{"type": "delete", "room": room.ID, "seq": 99})
	if f := wa.await("error"); f.Code != "not_found" {
		t.Fatalf("deleting a missing message: %+v", f)
	}
	// Sync shows tombstones: same seqs, bodies gone.
	wx.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room.ID): 0}})
	for _, seq := range []int64{first.Seq, second.Seq} {
		m := wx.await("msg")
		if m.Seq != seq || m.Body != "" || !m.Deleted || m.From != author.id {
			t.Fatalf("synced %+v, want the tombstone of %d", m, seq)
		}
	}
}

func TestSendRateLimit(t *testing.T) {
	n := startTestNode(t, testConfig(t)) // 20/s, burst 40
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})
	w := n.connect(alice)
	for i := 0; i < 60; i++ {
		w.send(map[string]any{"type": "send", "room": room.ID, "cid": fmt.Sprint("r", i), "body": "spam"})
	}
	acks, limited := 0, 0
	for acks+limited < 60 {
		switch f := w.next(); {
		case f.Type == "ack":
			acks++
		case f.Type == "error" && f.Code == "rate_limited":
			limited++
		}
	}
	if acks < 40 || acks > 50 || limited == 0 {
		t.Fatalf("60 sends at once: %d acked, %d rate_limited; want the burst of 40 (plus refill) through", acks, limited)
	}
}

// TestUpgradeLimitPerAddress refuses WebSocket upgrades past the limit
// with a 429 before the handshake, per client address.
func TestUpgradeLimitPerAddress(t *testing.T) {
	cfg := testConfig(t)
	cfg.UpgradeLimit = limit.Rule{N: 3, Window: time.Minute}
	n := startTestNode(t, cfg)
	alice := n.user(t, "Alice")
	for range 3 {
		n.connect(alice).conn.Close()
	}
	dial := func(local string) error {
		d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
			return nd.DialContext(ctx, network, addr)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, _, _, err := d.Dial(ctx, n.wsURL()+"?token="+alice.token)
		if conn != nil {
			conn.Close()
		}
		return err
	}
	var refused ws.StatusError
	if err := dial("127.0.0.1"); !errors.As(err, &refused) || int(refused) != 429 {
		t.Fatalf("fourth upgrade from one address: %v, want HTTP 429", err)
	}
	if err := dial("127.0.0.2"); err != nil {
		t.Fatalf("an upgrade from another address: %v", err)
	}
}
