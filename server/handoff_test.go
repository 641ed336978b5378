package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

var _ = alsoOn(onMemory, TestFramesOfOneWriteAreHandledInOrder)

// TestFramesOfOneWriteAreHandledInOrder: frames that arrive together are
// handled in the order sent, those that never wait (sends, pings) and
// those that may (a read position, a send with a mention) alike. On the
// single-node engine the first kind is handled on the goroutine that
// found the socket readable, and at the first of the second kind the
// rest is left to a worker. One write carries sends, a mention, a read
// position, a ping and the first half of a last send, whose other half
// follows later; then a read position comes first in a write of its own.
func TestFramesOfOneWriteAreHandledInOrder(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	wa, wb := n.connect(alice), n.connect(bob)
	for _, w := range []*wsClient{wa, wb} {
		w.send(map[string]any{"type": "sync", "rooms": map[string]int64{fmt.Sprint(room.ID): 0}})
		w.await("synced")
	}
	frame := func(v any) []byte {
		payload, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := ws.WriteFrame(&b, ws.MaskFrameInPlace(ws.NewTextFrame(payload))); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	send := func(cid, body string) []byte {
		return frame(map[string]any{"type": "send", "room": room.ID, "cid": cid, "body": body})
	}
	read := func(seq int64) []byte { return frame(map[string]any{"type": "read", "room": room.ID, "seq": seq}) }
	write := func(parts ...[]byte) {
		t.Helper()
		wa.wmu.Lock()
		defer wa.wmu.Unlock()
		_ = wa.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := wa.conn.Write(bytes.Join(parts, nil)); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	// hear reads alice's frames until she has the acks of cids, in
	// order, the read event of her position seq and, if pong, a pong.
	hear := func(cids []string, seq int64, pong bool) {
		t.Helper()
		var acks []string
		for heardRead := false; len(acks) < len(cids) || !heardRead || pong; {
			switch f := wa.next(); f.Type {
			case "ack":
				acks = append(acks, f.CID)
			case "pong":
				pong = false
			case "read":
				heardRead = heardRead || (f.User == alice.id && f.Seq == seq)
			case "error":
				t.Fatalf("alice got %+v", f)
			}
		}
		if strings.Join(acks, " ") != strings.Join(cids, " ") {
			t.Fatalf("acks came for %v, want %v", acks, cids)
		}
	}

	// A read position names an acked seq: one a send of the same write
	// gets may not be committed yet when the position is handled, which
	// then stops at the room's last committed seq.
	if ack := wa.say(room.ID, "c0", "zero"); ack.Seq != 1 {
		t.Fatalf("first message acked as %+v", ack)
	}
	last := send("c5", "five")
	write(send("c1", "one"), send("c2", "two @Bob"), read(1), send("c3", "three"), frame(map[string]any{"type": "ping"}), send("c4", "four"), last[:len(last)/2])
	time.Sleep(50 * time.Millisecond)
	write(last[len(last)/2:])
	hear([]string{"c1", "c2", "c3", "c4", "c5"}, 1, true)

	write(read(6), send("c6", "six"), send("c7", "seven"))
	hear([]string{"c6", "c7"}, 6, false)

	bodies := []string{"zero", "one", "two @Bob", "three", "four", "five", "six", "seven"}
	for i, body := range bodies {
		m := wb.await("msg")
		if m.Seq != int64(i+1) || m.Body != body || m.CID != fmt.Sprint("c", i) {
			t.Fatalf("bob's message %d: seq %d %q (%s), want seq %d %q", i, m.Seq, m.Body, m.CID, i+1, body)
		}
	}
}
