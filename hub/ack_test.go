package hub

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"moim/chatlog"
)

// msgFrame is room's msg event from user from with cid, as a broker
// delivers it.
func msgFrame(room, seq, from int64, cid, body string, ts int64) []byte {
	d := chatlog.NewDraft(room, from, "a", body, cid, chatlog.KindText, 0, ts)
	p := strconv.AppendInt(append([]byte(nil), d.Head...), seq, 10)
	return textFrame(append(p, d.Tail...))
}

// ackOf is the ack a client must get for a send.
func ackOf(cid string, room, seq, ts int64) string {
	return string(encode(ackEvent{Type: "ack", CID: cid, Room: room, Seq: seq, TS: ts}))
}

// noMore fails if anything reaches the client within d.
func noMore(t *testing.T, r *bufio.Reader, conn net.Conn, d time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	if f, err := ws.ReadFrame(r); err == nil {
		t.Fatalf("unexpected frame %q", f.Payload)
	}
}

// A send is answered on its connection by its msg and then its ack, once
// each, whichever of the two is ready first: the fanout writes both
// together (building the ack from the msg, or taking the one parked for
// it); the room's other members, and the sender's other connections, get
// the msg alone.
func TestAckGoesOutWithTheSendersMsg(t *testing.T) {
	for _, ackFirst := range []bool{false, true} {
		name := "msg first"
		if ackFirst {
			name = "ack first"
		}
		t.Run(name, func(t *testing.T) {
			const room, seq, ts = 7, 42, 1718000000123
			h, conns, clients := loopbackHub(t, Config{}, 3)
			conns[2].user = conns[0].user // the sender's second device
			h.rooms = map[int64]map[*Conn]struct{}{room: {}}
			for _, c := range conns {
				h.rooms[room][c] = struct{}{}
			}
			sender := conns[0]
			cid := `q"<x>\y`
			p := sender.expect(room, cid)
			msg := msgFrame(room, seq, sender.user, cid, `he said "cid":"no" and "from":9`, ts)
			f := &fanout{h: h}
			defer f.closeRing()
			if ackFirst {
				h.settle(sender, p, seq, ts, false)
				time.Sleep(ackWait / 4)
			}
			f.deliverFrame(room, msg)
			if !ackFirst {
				h.settle(sender, p, seq, ts, false)
			}
			want := []string{string(framePayload(msg)), ackOf(cid, room, seq, ts)}
			r := bufio.NewReader(clients[0])
			if got := readText(t, r, clients[0], 2, 10*time.Second); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("sender got %q, want %q", got, want)
			}
			for i := 1; i < 3; i++ {
				ri := bufio.NewReader(clients[i])
				if got := readText(t, ri, clients[i], 1, 10*time.Second); got[0] != want[0] {
					t.Fatalf("connection %d got %q, want the msg", i, got)
				}
				noMore(t, ri, clients[i], 10*ackWait)
			}
			noMore(t, r, clients[0], 10*ackWait)
			if n := counted(t, h.metrics.acks.WithLabelValues("with_msg")); n != 1 {
				t.Fatalf("%v acks counted as written with their msg, want 1", n)
			}
		})
	}
}

// An ack whose msg does not come (the connection is not in the room's
// local set) goes alone after ackWait, and a duplicate send's (no msg
// follows it) at once; a send that failed leaves nothing behind.
func TestAckWithoutItsMsgGoesAlone(t *testing.T) {
	const room, ts = 7, 1718000000123
	h, conns, clients := loopbackHub(t, Config{}, 1)
	c := conns[0]
	r := bufio.NewReader(clients[0])
	failed := c.expect(room, "gone")
	c.forget(failed)
	p := c.expect(room, "a")
	start := time.Now()
	h.settle(c, p, 5, ts, false)
	if got := readText(t, r, clients[0], 1, 10*time.Second); got[0] != ackOf("a", room, 5, ts) {
		t.Fatalf("got %q, want the ack", got)
	}
	if waited := time.Since(start); waited < ackWait {
		t.Fatalf("the ack went after %v, before its msg could come (ackWait %v)", waited, ackWait)
	}
	dup := c.expect(room, "b")
	h.settle(c, dup, 3, ts, true)
	if got := readText(t, r, clients[0], 1, 10*time.Second); got[0] != ackOf("b", room, 3, ts) {
		t.Fatalf("got %q, want the duplicate's ack", got)
	}
	if n := counted(t, h.metrics.acks.WithLabelValues("alone")); n != 2 {
		t.Fatalf("%v acks counted as alone, want 2", n)
	}
	c.mu.Lock()
	left := len(c.sends)
	c.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d sends still pending on the connection", left)
	}
}

// A connection closed while an ack waits for its msg gets the ack before
// the close frame.
func TestCloseWritesParkedAcks(t *testing.T) {
	const room, ts = 7, 1718000000123
	h, conns, clients := loopbackHub(t, Config{}, 1)
	c := conns[0]
	h.settle(c, c.expect(room, "a"), 9, ts, false)
	h.closeConn(c, ws.StatusGoingAway, "bye")
	r := bufio.NewReader(clients[0])
	if got := readText(t, r, clients[0], 1, 10*time.Second); got[0] != ackOf("a", room, 9, ts) {
		t.Fatalf("got %q, want the parked ack", got)
	}
	f, err := ws.ReadFrame(r)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("after the ack: %+v, %v; want the close frame", f.Header, err)
	}
}

// parseOwn finds a msg's own fields whatever its text says, and nothing
// in other events.
func TestParseOwnReadsTheMsgsFields(t *testing.T) {
	payload := framePayload(msgFrame(7, 42, 3, "c-1", `","cid":"x","from":9,"seq":1,"ts":2`, 1718000000123))
	m := parseOwn(7, payload)
	if m.from != 3 || m.seq != 42 || m.ts != 1718000000123 || !strings.HasPrefix(string(m.cid), `"c-1"`) {
		t.Fatalf("parseOwn = from %d seq %d ts %d cid %.10q", m.from, m.seq, m.ts, m.cid)
	}
	if m := parseOwn(7, []byte(`{"type":"deleted","room":7,"seq":4,"by":3}`)); m.from != 0 {
		t.Fatalf("a deleted event parsed as a msg from %d", m.from)
	}
}
