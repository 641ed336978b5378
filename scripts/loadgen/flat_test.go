package main

import (
	"encoding/json"
	"testing"
)

// Frames as a node writes them (hub/protocol.go), and near misses that
// must go to encoding/json.
var flatSeeds = []string{
	`{"type":"ack","cid":"lg-1733390000000000000-17","room":12,"seq":345,"ts":1733390000123}`,
	`{"type":"error","code":"busy","message":"the node is behind; resend after retry_after_ms","cid":"lg-1-2","room":3,"retry_after_ms":250}`,
	`{"type":"error","code":"not_member","message":"not a member of this room"}`,
	`{"type":"pong"}`,
	`{"type":"synced","room":7,"seq":0}`,
	`{"type":"gap","room":7,"from":-3,"to":9}`,
	`{"type":"ready","user":42,"node":"n1"}`,
	` { "type" : "ack" , "room" : 1 } `,
	`{}`,
	`{"type":"msg","room":1,"seq":2,"body":"lg 1 lg-1-2 xx","user":3}`,
	`{"type":"presence","users":[1,2]}`,
	`{"type":"error","message":"caf\u00e9"}`,
	`{"type":"error","message":"café"}`,
	`{"type":"ack","room":1.0}`,
	`{"type":"ack","room":"1"}`,
	`{"type":7}`,
	`{"TYPE":"ack"}`,
	`{"type":"ack","seq":01}`,
	`{"type":"ack","seq":12345678901234567890}`,
	`{"type":"ack","cid":null}`,
	`{"type":"ack","seq":-}`,
	`{"type":"ack"} x`,
	`{"type":"ack",}`,
	`{"type":"ack","room":1,"room":2}`,
	`[1]`,
	``,
}

// TestParseFlatReadsServerFrames: the frames the generator counts (acks,
// refusals with their wait, syncs and gaps) come out of the fast path as
// encoding/json reads them; others fall through to it.
func TestParseFlatReadsServerFrames(t *testing.T) {
	for _, s := range flatSeeds[:8] {
		var fast frame
		if !parseFlat([]byte(s), &fast) {
			t.Fatalf("parseFlat refused %s", s)
		}
		var want frame
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		if fast != want {
			t.Errorf("%s: parseFlat %+v, encoding/json %+v", s, fast, want)
		}
	}
	for _, s := range []string{
		`{"type":"presence","users":[1,2]}`, `{"type":"error","message":"caf\u00e9"}`, `{"type":"ack","room":1.0}`,
		`{"TYPE":"ack"}`, `{"type":"ack","cid":null}`, `{"type":"ack"} x`,
	} {
		var f frame
		if parseFlat([]byte(s), &f) {
			t.Errorf("parseFlat took %s, which encoding/json must read", s)
		}
	}
	f, err := decodeFrame([]byte(`{"type":"error","code":"busy","message":"caf\u00e9","retry_after_ms":20}`))
	if err != nil || f.Message != "café" || f.RetryAfterMS != 20 || f.Code != "busy" {
		t.Errorf("decodeFrame: %+v, %v", f, err)
	}
}

// FuzzParseFlat: whatever parseFlat accepts, encoding/json accepts and
// reads the same way.
func FuzzParseFlat(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var fast frame
		if !parseFlat(p, &fast) {
			return
		}
		var want frame
		if err := json.Unmarshal(p, &want); err != nil {
			t.Fatalf("parseFlat took %q, encoding/json refuses it: %v", p, err)
		}
		if fast != want {
			t.Fatalf("%q: parseFlat %+v, encoding/json %+v", p, fast, want)
		}
	})
}
