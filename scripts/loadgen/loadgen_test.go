package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The generator end to end (against real nodes, Redis, MariaDB and
// FerretDB) runs in scripts/chaos; these check the parts a run's verdict
// rests on: how flags become stages and nodes, how latency quantiles are
// read from the histogram, how a generator message is recognised, and
// when a stage passes.

func TestFlagsBecomeStagesAndNodes(t *testing.T) {
	o, err := parseFlags([]string{"-url", "http://127.0.0.1:8081/, http://127.0.0.1:8082", "-stages", "100:100, 5000:5000", "-room-size", "10"})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.stages) != 2 || o.stages[0] != (stageSpec{100, 100}) || o.stages[1] != (stageSpec{5000, 5000}) {
		t.Errorf("stages %+v", o.stages)
	}
	if len(o.wsBases) != 2 || o.wsBases[0] != "ws://127.0.0.1:8081/ws?token=" || o.wsBases[1] != "ws://127.0.0.1:8082/ws?token=" {
		t.Errorf("WebSocket bases %q", o.wsBases)
	}
	if !o.bind || o.sources != 1 {
		t.Errorf("loopback nodes: bind %v, sources %d; want source addresses bound, one for 5000 users", o.bind, o.sources)
	}
	if o, err := parseFlags([]string{"-users", "60000", "-rate", "1"}); err != nil || o.sources != 3 {
		t.Errorf("60,000 users: sources %d (%v), want 3 loopback addresses of 20,000 connections each", o.sources, err)
	}

	for _, bad := range [][]string{
		{"-stages", "100"},
		{"-stages", "0:100"},
		{"-stages", "100:-1"},
		{"-url", "ftp://example.org"},
		{"-url", "http://127.0.0.1:8081,"},
		{"-users", "0"},
		{"-room-size", "0"},
		{"-password", "short"},
		{"-also-members", "x"},
		{"-storm", "-reconnect"},
		{"-storm", "-storm-probe", "0s"},
		{"extra"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	h := newHistogram()
	for i := 1; i <= 1000; i++ { // 1 ms … 1000 ms
		h.record(int64(i) * int64(time.Millisecond))
	}
	h.record(-5) // a clock step counts as 0, not as a negative latency
	got := h.quantiles(0.5, 0.99, 1)
	// The ceil(q·1001)-th sample (the 501st is 500 ms, the 991st 990 ms) is
	// read as its bucket's upper edge (1 ms buckets above 100 ms), never
	// above the maximum.
	want := []time.Duration{501 * time.Millisecond, 991 * time.Millisecond, 1000 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("quantile %d: %v, want %v", i, got[i], want[i])
		}
	}
	if s := h.summary(); s.Count != 1001 || s.Max != 1000 {
		t.Errorf("summary %+v", s)
	}

	fine := newHistogram()
	fine.record(int64(1234 * time.Microsecond))
	fine.record(int64(2 * time.Millisecond))
	if q := fine.quantiles(0.5)[0]; q != 1240*time.Microsecond {
		t.Errorf("below 100 ms the buckets are 10 µs: p50 of 1.234 ms and 2 ms read %v, want 1.24 ms", q)
	}
	slow := newHistogram()
	slow.record(int64(300 * time.Second))
	if q := slow.quantiles(0.5)[0]; q != 300*time.Second {
		t.Errorf("past the last bucket the maximum is reported: %v", q)
	}
}

func TestGeneratorMessagesAreRecognised(t *testing.T) {
	msg := []byte(`{"type":"msg","room":7,"seq":131,"from":42,"name":"앨리스","body":"lg 1718000000123456789 lg-1718000000123456789-2s xxxx","cid":"lg-1718000000123456789-2s","ts":1718000000123,"kind":"text"}`)
	room, seq, sent, cid, ok := parseMsg(msg)
	if !ok || room != 7 || seq != 131 || sent != 1718000000123456789 || string(cid) != "lg-1718000000123456789-2s" {
		t.Errorf("parseMsg: room %d seq %d sent %d cid %q ok %v", room, seq, sent, cid, ok)
	}
	// A body that merely contains the generator's marker is not the generator's.
	other := []byte(`{"type":"msg","room":7,"seq":132,"from":43,"name":"Bo","body":"he wrote \"body\":\"lg 99","cid":"x","ts":1,"kind":"text"}`)
	if _, _, sent, _, ok := parseMsg(other); !ok || sent != 0 {
		t.Errorf("a member's message quoting the marker: sent %d ok %v, want 0 true", sent, ok)
	}
	if _, _, sent, _, _ := parseMsg([]byte(`{"type":"msg","room":7,"seq":1,"from":42,"name":"A","body":"` + warmBody + ` 7","cid":"wu-1","ts":1,"kind":"text"}`)); sent != -1 {
		t.Errorf("warm-up message: sent %d, want -1", sent)
	}
	if _, _, _, _, ok := parseMsg([]byte(`{"type":"ack","cid":"lg-1-1","room":7,"seq":131,"ts":1}`)); ok {
		t.Error("an ack parsed as a msg")
	}
	if cidSent("lg-1718000000123456789-2s") != 1718000000123456789 || cidSent("phone-1") != 0 {
		t.Error("cidSent")
	}
}

func TestVerdicts(t *testing.T) {
	limits := []time.Duration{time.Second, 2 * time.Second}
	judged := func(change func(*result)) *result {
		r := &result{Sent: 100, Acked: 100, Latency: latencySummary{Count: 1000, P99: 1500}}
		change(r)
		r.judge(limits)
		return r
	}
	if r := judged(func(*result) {}); r.Verdicts["1000ms"] != "FAIL" || r.Verdicts["2000ms"] != "PASS" || r.Pass {
		t.Errorf("p99 1.5 s: %v pass %v", r.Verdicts, r.Pass)
	}
	for name, change := range map[string]func(*result){
		"an acked message lost":          func(r *result) { r.Lost = 1 },
		"a message under two seqs":       func(r *result) { r.DuplicateMessages = 1 },
		"out of order":                   func(r *result) { r.OutOfOrder = 1 },
		"an error":                       func(r *result) { r.Errors, r.ErrorsTotal = map[string]int64{"not_member": 1}, 1 },
		"nothing sent":                   func(r *result) { r.Sent = 0 },
		"history incomplete":             func(r *result) { r.History = &historyResult{Complete: false} },
		"unavailable without -reconnect": func(r *result) { r.Errors, r.ErrorsTotal = map[string]int64{"unavailable": 3}, 3 },
	} {
		if r := judged(change); r.Verdicts["2000ms"] != "FAIL" {
			t.Errorf("%s: %v, want FAIL", name, r.Verdicts)
		}
	}
	withRecovery := judged(func(r *result) {
		r.Recovery = &recoveryResult{}
		r.Errors, r.ErrorsTotal = map[string]int64{"unavailable": 3, "conn_lost": 2}, 5
	})
	if withRecovery.Verdicts["2000ms"] != "PASS" {
		t.Errorf("refusals a reconnecting client resends are part of a fault: %v", withRecovery.Verdicts)
	}
	if strings.Contains(judged(func(*result) {}).jsonLine(), "\n") {
		t.Error("the JSON result spans several lines")
	}
}

// TestADrainThatRunsOutSaysSo: a stage whose last send is never answered
// waits out -drain and is reported as timed out, in the JSON line and in
// the table beside the lost count, so a load tester reads its "lost" as
// possibly in flight; one with every send answered and delivered is not.
func TestADrainThatRunsOutSaysSo(t *testing.T) {
	lg := &loadgen{o: &options{roomSize: 2, bodySize: 100, drain: 100 * time.Millisecond}, runID: "run"}
	lg.tgt = newCentrifugoTarget(lg)
	accts, _ := lg.tgt.accounts(context.Background(), 2)
	st := newStage(context.Background(), lg, 1, stageSpec{2, 1}, accts, nil)
	st.sendEnd.Store(time.Now().UnixNano())
	st.sent.Store(2)
	st.acked.Store(1)
	st.expectedLive.Store(2)
	st.delivered.Store(2)

	waited, drained := st.drain(context.Background())
	if drained || waited < 50*time.Millisecond {
		t.Fatalf("one send unanswered: drained %v after %v, want a timeout after about 100ms", drained, waited)
	}
	r := &result{Sent: 2, Acked: 1, Lost: 1, DrainS: round2(waited.Seconds()), DrainTimedOut: !drained}
	var out strings.Builder
	r.print(&out, nil)
	if !strings.Contains(out.String(), "the drain timed out: some may still have been in flight") || !strings.Contains(out.String(), "timed out before every send was answered") {
		t.Errorf("the table does not say the drain timed out:\n%s", out.String())
	}
	if !strings.Contains(r.jsonLine(), `"drain_timed_out":true`) {
		t.Errorf("the JSON line does not say the drain timed out: %s", r.jsonLine())
	}

	st.acked.Store(2)
	st.sendEnd.Store(time.Now().UnixNano())
	if _, drained := st.drain(context.Background()); !drained {
		t.Error("every send answered and delivered: the drain timed out")
	}
	r = &result{Sent: 2, Acked: 2}
	if strings.Contains(r.jsonLine(), "drain_timed_out") {
		t.Errorf("a drain that finished is reported as timed out: %s", r.jsonLine())
	}
}
