package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
)

func TestStampBodyKeepsTheCID(t *testing.T) {
	cid := []byte("lg-1718000000123456789-2s")
	body := appendBody(nil, 1718000000123456789, cid, []byte("xxxx"), 60)
	p := moimTarget{}.appendSend(nil, &client{room: &room{id: 7}}, cid, body)
	stampBody(p, 1718000009999999999)
	var f struct{ CID, Body string }
	if err := json.Unmarshal(p, &f); err != nil {
		t.Fatalf("stamped send %s: %v", p, err)
	}
	sent, gotCID := bodySent([]byte(f.Body))
	if sent != 1718000009999999999 || string(gotCID) != string(cid) || f.CID != string(cid) || len(f.Body) != len(body) {
		t.Errorf("stamped send %s: body time %d cid %q, want the new time and the same cid and size", p, sent, gotCID)
	}
}

// TestAResendAfterADropIsMarked: what the reference client resends on a
// new connection is the same send, marked as a resend.
func TestAResendAfterADropIsMarked(t *testing.T) {
	cid := []byte("lg-1718000000123456789-2s")
	body := appendBody(nil, 1718000000123456789, cid, []byte("xxxx"), 60)
	p := moimTarget{}.appendSend(nil, &client{room: &room{id: 7}}, cid, body)
	var f struct {
		Type, CID, Body string
		Room            int64
		Resend          bool
	}
	if err := json.Unmarshal(markedResend(p), &f); err != nil {
		t.Fatalf("marked resend %s: %v", markedResend(p), err)
	}
	if f.Type != "send" || f.Room != 7 || f.CID != string(cid) || f.Body != string(body) || !f.Resend {
		t.Errorf("marked resend %+v, want the send of %s with resend true", f, p)
	}
}

// TestBusyRefusalsAreResentAndAcked runs the generator as the reference
// client (-reconnect) against a real zero-setup node told to refuse
// sends whenever anything lags (MOIM_BUSY_LAG=1ns): sends are refused as
// busy, resent with the same cid after retry_after_ms, and every one is
// acked, delivered to every member once and in the history once.
func TestBusyRefusalsAreResentAndAcked(t *testing.T) {
	base := startNode(t, "MOIM_BUSY_LAG=1ns")

	out, err := runLoadgen(t, "-url", base, "-reconnect", "-history-check",
		"-users", "20", "-room-size", "5", "-rate", "40", "-duration", "3s", "-drain", "30s", "-settle", "100ms", "-limits", "60s")
	if err != nil {
		t.Fatalf("loadgen exited with %v, want every stage passing (nothing lost or doubled)", err)
	}
	var res struct {
		Sent, Acked, Lost, Duplicates int64
		DuplicateMessages             int64 `json:"duplicate_messages"`
		Expected                      int64 `json:"expected_deliveries"`
		Received                      int64 `json:"received_deliveries"`
		Errors                        map[string]int64
		Recovery                      struct {
			Busy    int64
			Resends int64
		}
		History *struct{ Complete bool }
		Latency latencySummary  `json:"latency_ms"`
		Socket  *latencySummary `json:"socket_latency_ms"`
	}
	lastResult(t, out, &res)
	// Connections redialed after refusals keep their receive times too.
	if s := res.Socket; s == nil || s.Count != res.Latency.Count || s.P50 > res.Latency.P50 || s.Max > res.Latency.Max {
		t.Errorf("latency at the socket %+v beside delivery latency %+v: want one for every delivery timed, never later than its read", s, res.Latency)
	}
	if res.Recovery.Busy == 0 || res.Errors["busy"] != res.Recovery.Busy || res.Recovery.Resends < res.Recovery.Busy {
		t.Errorf("busy refusals %d (errors %v), resends %d: want refusals, each resent", res.Recovery.Busy, res.Errors, res.Recovery.Resends)
	}
	if res.Sent == 0 || res.Acked != res.Sent || res.Lost != 0 || res.Duplicates != 0 || res.DuplicateMessages != 0 ||
		res.Received != res.Expected || res.History == nil || !res.History.Complete {
		t.Errorf("%s", fmt.Sprintf("sent %d acked %d lost %d duplicates %d (messages %d) deliveries %d of %d history %+v: want every send acked once, delivered once to every member, in the history",
			res.Sent, res.Acked, res.Lost, res.Duplicates, res.DuplicateMessages, res.Received, res.Expected, res.History))
	}
}

// TestBusyHoldsTheUserUntilTheResendIsOut: a user whose send was refused
// as busy gets no new sends from the pacer until the refused one has been
// written again, even past the wait, so the resend is the connection's
// first send after the wait and takes the connection's turn. The
// connection is a pipe, whose write waits for this test to read it.
func TestBusyHoldsTheUserUntilTheResendIsOut(t *testing.T) {
	near, far := net.Pipe()
	defer near.Close()
	defer far.Close()
	c := &client{st: &stage{}, conn: near, ref: newRefState()}
	c.ref.addPending("a", []byte(`{"type":"send","room":1,"cid":"a","body":"x"}`))

	if !c.ref.refused(c, frame{Type: "error", Code: "busy", CID: "a", Room: 1, RetryAfterMS: 20}) {
		t.Fatal("a busy refusal of a pending send was not taken as the reference client's")
	}
	if !c.held() {
		t.Fatal("not held right after a busy refusal")
	}
	time.Sleep(100 * time.Millisecond) // the wait is over; the resend blocks on the pipe
	if !c.held() {
		t.Fatal("held no more past the wait though the refused send has not gone again: a new send would take its turn")
	}
	_ = far.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _, err := wsutil.ReadClientData(far)
	if err != nil || !bytes.Contains(got, []byte(`"cid":"a"`)) {
		t.Fatalf("resend %q, %v: want the refused send again", got, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.held() {
		if time.Now().After(deadline) {
			t.Fatal("still held after the refused send went again")
		}
		time.Sleep(time.Millisecond)
	}
	if got := c.st.resends.Load(); got != 1 {
		t.Errorf("resends %d, want 1", got)
	}
}
