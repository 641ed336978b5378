package main

import (
	"strings"
	"testing"
)

// TestSendRulesAreTheSameOverSocketAndREST: a message breaking a field
// rule gets the same code and message whether it comes as a send frame or
// as POST /api/rooms/{id}/messages (docs/PROTOCOL.md, "validation"), and
// an edit's body rule likewise over the edit frame and PATCH.
func TestSendRulesAreTheSameOverSocketAndREST(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Rules"})
	mp := urlf("/api/rooms/%d/messages", room.ID)
	w := n.connect(alice)
	for name, msg := range map[string]map[string]any{
		"empty body":     {"cid": "r1", "body": ""},
		"long body":      {"cid": "r2", "body": strings.Repeat("가", 4001)},
		"control char":   {"cid": "r3", "body": "bell\x07"},
		"empty cid":      {"cid": "", "body": "x"},
		"cid with ':'":   {"cid": "a:b", "body": "x"},
		"long cid":       {"cid": strings.Repeat("c", 65), "body": "x"},
		"negative reply": {"cid": "r4", "body": "x", "reply_to": -1},
	} {
		rest := alice.fails(400, "validation", "POST", mp, msg)
		frame := map[string]any{"type": "send", "room": room.ID}
		for k, v := range msg {
			frame[k] = v
		}
		w.send(frame)
		if f := w.await("error"); f.Code != "validation" || f.Message != rest {
			t.Errorf("%s: the send frame got %s %q; REST got validation %q", name, f.Code, f.Message, rest)
		}
	}
	sent := w.say(room.ID, "ok", "fine")
	rest := alice.fails(400, "validation", "PATCH", mp+"/"+itoa(sent.Seq), map[string]any{"body": ""})
	w.send(map[string]any{"type": "edit", "room": room.ID, "seq": sent.Seq, "body": ""})
	if f := w.await("error"); f.Code != "validation" || f.Message != rest {
		t.Errorf("empty edit: the edit frame got %s %q; REST got validation %q", f.Code, f.Message, rest)
	}
}
