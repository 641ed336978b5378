package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestBusyNodeRefusesSendsThenTakesTheirRetries forces a node behind (a
// busy lag of a nanosecond: every ack or delivery halves the share of
// sends the node takes in the next 100 ms) and sends over WebSocket and REST until sends are refused as
// busy. A refused send carries retry_after_ms (REST: 503 and
// Retry-After), is not stored, and resent with the same cid after that
// wait it is acked (over WebSocket, on that first resend: it is the
// connection's turn however busy the node is); in the end every cid is
// in the room once under one seq, and the other member got each exactly
// once, in seq order.
func TestBusyNodeRefusesSendsThenTakesTheirRetries(t *testing.T) {
	cfg := testConfig(t)
	cfg.BusyLag = time.Nanosecond
	cfg.SendRate, cfg.SendBurst = 1e6, 1e6
	n := startTestNode(t, cfg)
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Busy", "member_ids": []int64{bob.id}})
	wa, wb := n.connect(alice), n.connect(bob)

	stored := func(cid string) bool {
		for _, m := range alice.history(room.ID) {
			if m.CID == cid {
				return true
			}
		}
		return false
	}
	var cids []string
	refusedWS := 0
	// Each send is answered before the next; a refusal is resent with
	// the same cid after its wait, and must be acked then. Enough sends
	// that some land in a busy window (every ack makes the next window
	// busy): a fast node acked 200 within admission's first window,
	// before any was judged.
	for i := 0; refusedWS < 3; i++ {
		if i == 5000 {
			t.Fatalf("5000 sends and only %d busy refusals", refusedWS)
		}
		cid := fmt.Sprint("w", i)
		cids = append(cids, cid)
		body := "message " + cid
		for attempt := 0; ; attempt++ {
			wa.send(map[string]any{"type": "send", "room": room.ID, "cid": cid, "body": body})
			f := wa.awaitWhere(func(f frameMsg) bool { return f.CID == cid && (f.Type == "ack" || f.Type == "error") })
			if f.Type == "ack" {
				break
			}
			if attempt > 0 {
				t.Fatalf("cid %s refused again (%+v) when resent after the wait it was told", cid, f)
			}
			if f.Code != "busy" || f.RetryAfterMS <= 0 || f.Room != room.ID || f.Message == "" {
				t.Fatalf("send %s answered %+v, want busy with retry_after_ms", cid, f)
			}
			if stored(cid) {
				t.Fatalf("send %s refused as busy but stored", cid)
			}
			refusedWS++
			time.Sleep(time.Duration(f.RetryAfterMS) * time.Millisecond)
		}
	}

	refusedREST := 0
	for i := 0; refusedREST < 1; i++ {
		if i == 100 {
			t.Fatal("100 REST sends and no busy refusal")
		}
		cid := fmt.Sprint("r", i)
		cids = append(cids, cid)
		for attempt := 0; ; attempt++ {
			if attempt == 20 {
				t.Fatalf("REST cid %s refused 20 times", cid)
			}
			status, retryAfter, code := restSend(t, n.url, alice.token, room.ID, cid)
			if status == http.StatusCreated {
				break
			}
			if status != http.StatusServiceUnavailable || code != "busy" || retryAfter < 1 {
				t.Fatalf("REST send %s: status %d code %q Retry-After %d, want 201 or 503 busy with Retry-After", cid, status, code, retryAfter)
			}
			if stored(cid) {
				t.Fatalf("REST send %s refused as busy but stored", cid)
			}
			if attempt == 0 {
				refusedREST++
			}
			time.Sleep(time.Duration(retryAfter) * time.Second)
		}
	}

	hist := alice.history(room.ID)
	seqOf := map[string]int64{}
	for _, m := range hist {
		if m.Kind != "text" {
			continue
		}
		if _, dup := seqOf[m.CID]; dup {
			t.Fatalf("cid %s stored twice", m.CID)
		}
		seqOf[m.CID] = m.Seq
	}
	if len(seqOf) != len(cids) {
		t.Fatalf("history holds %d messages, want %d (one per cid)", len(seqOf), len(cids))
	}
	var last int64
	for _, cid := range cids {
		seq, ok := seqOf[cid]
		if !ok || seq <= last {
			t.Fatalf("cid %s at seq %d (present %v) after seq %d: want every cid once, in send order", cid, seq, ok, last)
		}
		last = seq
	}
	got := map[string]int{}
	for len(got) < len(cids) {
		f := wb.await("msg")
		if f.Room != room.ID {
			continue
		}
		got[f.CID]++
		if got[f.CID] > 1 || f.Seq != seqOf[f.CID] {
			t.Fatalf("bob got cid %s %d times at seq %d, want once at %d", f.CID, got[f.CID], f.Seq, seqOf[f.CID])
		}
	}
}

var _ = alsoOn(onMemory, TestBusyNodeRefusesSendsThenTakesTheirRetries)

// restSend posts one message and returns the status, Retry-After in
// seconds (0 when absent) and the error code ("" on success).
func restSend(t *testing.T, base, token string, room int64, cid string) (status, retryAfter int, code string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"cid": cid, "body": "message " + cid})
	req, err := http.NewRequest("POST", urlf("%s/api/rooms/%d/messages", base, room), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("REST send %s: %v", cid, err)
	}
	defer resp.Body.Close()
	var e apiError
	if resp.StatusCode >= 400 {
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("REST send %s: status %d, body not the error shape: %v", cid, resp.StatusCode, err)
		}
	}
	retryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
	return resp.StatusCode, retryAfter, e.Error.Code
}
