package hub

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A store that stops answering yields no lag samples at all; sends held
// in flight with none finishing must still make the node refuse most
// sends, and it takes them all again once they finish. Late deliveries
// do the same.
func TestAdmissionRefusesWhileBehind(t *testing.T) {
	a := newAdmission(150*time.Millisecond, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.run(ctx)
	until := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not %s within 20 s", what)
			}
		}
	}
	takesAll := func() bool { return a.gate.Load() == gateAll }
	atFloor := func() bool { return a.gate.Load() <= gateAll/49 } // the floor is a fiftieth
	if !takesAll() || a.busy() != 0 {
		t.Fatal("an idle node refuses sends")
	}
	a.inflight.Add(1)
	until("at the floor while a send stalls", atFloor)
	refused := 0
	for range 1000 {
		if w := a.busy(); w > 0 {
			refused++
			if w < 150*time.Millisecond*49 || w >= 2*maxRetryAfter {
				t.Fatalf("retry after %v at the floor, want from the limit over the share (a fiftieth) to twice the cap", w)
			}
		}
	}
	if refused < 900 {
		t.Errorf("%d of 1000 sends refused at the floor, want about 98 %%", refused)
	}
	a.inflight.Add(-1)
	a.finished.Add(1)
	until("taking every send once the stall ends", takesAll)

	until("at the floor while deliveries are a second late", func() bool {
		a.observe(time.Second)
		return atFloor()
	})
	until("taking every send once no late delivery follows", takesAll)
}

// Connections that wait long for a worker make the node refuse sends only
// while every one of them waits (a queue that does not drain), not when
// a burst or a pause delays some while others are read at once.
func TestAdmissionCountsAStandingQueueNotABurst(t *testing.T) {
	a := newAdmission(150*time.Millisecond, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.run(ctx)
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		// The short wait first: a window that ends between the two
		// still holds a short one, from this round or the next.
		a.observeWait(time.Millisecond)
		a.observeWait(2 * time.Second)
		if a.gate.Load() != gateAll {
			t.Fatal("a burst that left some connections waiting 2 s made the node refuse sends")
		}
	}
	for end := time.Now().Add(20 * time.Second); a.gate.Load() > gateAll/49; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("every connection waiting 2 s for a worker did not make the node refuse sends within 20 s")
		}
		a.observeWait(2 * time.Second)
	}
}

// A refused client is told to stay away for eight times the limit over
// the share taken, spread to twice that: past capacity, clients told the
// limit over the share came back often enough that answering their
// refusals took the CPU the deliveries needed (docs/BENCHMARKS.md,
// "Session 31").
func TestRefusedClientsStayAwayLongerTheFewerSendsAreTaken(t *testing.T) {
	a := newAdmission(100*time.Millisecond, prometheus.NewRegistry())
	for _, share := range []float64{0.5, 0.25} {
		a.judge(time.Second) // behind: the share halves
		want := time.Duration(8 * float64(100*time.Millisecond) / share)
		refused := 0
		for range 1000 {
			w := a.busy()
			if w == 0 {
				continue
			}
			refused++
			if w < want || w >= 2*want {
				t.Fatalf("share %.2f: retry after %v, want from %v to twice that", share, w, want)
			}
		}
		if lo, hi := int(1000*(1-share))-100, int(1000*(1-share))+100; refused < lo || refused > hi {
			t.Errorf("share %.2f: %d of 1000 sends refused, want about %d", share, refused, int(1000*(1-share)))
		}
	}
}

// TestARefusedSendIsTakenOnItsTurn: at the floor share (2 % of sends
// taken), a connection refused as busy that sends again when its wait is
// over is taken, every time and once; one that sends before that is
// refused again and its turn moves to the new wait's end.
func TestARefusedSendIsTakenOnItsTurn(t *testing.T) {
	a := newAdmission(100*time.Millisecond, prometheus.NewRegistry())
	for range 10 {
		a.judge(time.Second)
	}
	now := time.Now()
	refused, early, again := 0, 0, 0
	for range 1000 {
		var turn int64
		wait := a.busyTurn(&turn, now)
		if wait == 0 {
			continue
		}
		refused++
		if turn != now.Add(wait).UnixNano() {
			t.Fatalf("refused with a wait of %v, turn at %d, want %d", wait, turn, now.Add(wait).UnixNano())
		}
		before := now.Add(wait - time.Millisecond)
		w := a.busyTurn(&turn, before)
		if w == 0 {
			continue // taken early by the share
		}
		early++
		if turn != before.Add(w).UnixNano() {
			t.Fatalf("refused early with a wait of %v, turn at %d, want %d", w, turn, before.Add(w).UnixNano())
		}
		due := time.Unix(0, turn)
		if w = a.busyTurn(&turn, due); w > 0 || turn != 0 {
			t.Fatalf("sent on its turn: refused for %v (turn left at %d), want taken", w, turn)
		}
		if a.busyTurn(&turn, due) > 0 {
			again++
		}
	}
	// Each count is about 98 % of its trials; 90 % leaves room for chance.
	if refused < 900 || early < 9*refused/10 || again < 9*refused/10 {
		t.Errorf("of 1000 sends %d refused; of those, %d refused again when sent early and %d when sent again after the turn was used, want about 98 %% each", refused, early, again)
	}
}
