package main

import (
	"testing"
	"time"

	"moim/teststack"
)

var kst = time.FixedZone("KST", 9*3600)

// schedules are c's auto-pay orders.
func (c *client) schedules() []teststack.Schedule { return teststack.Schedules(c.kit()) }

// feeMsg is a room message with its fee event's fields.
type feeMsg struct {
	Kind string         `json:"kind"`
	Body string         `json:"body"`
	Fee  map[string]any `json:"fee"`
}

// feeEvents lists the fee events in a room's history with event name ev.
func feeEvents(c *client, room int64, ev string) []feeMsg {
	c.t.Helper()
	var page struct {
		Messages []feeMsg `json:"messages"`
	}
	c.must(200, "GET", urlf("/api/rooms/%d/messages?limit=100", room), nil, &page)
	var out []feeMsg
	for _, m := range page.Messages {
		if m.Kind == "fee" && m.Fee["event"] == ev {
			out = append(out, m)
		}
	}
	return out
}

// eventually polls cond for up to 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setClock moves the node's fee scheduler to at, from where its clock runs on.
func setClock(n *testNode, at time.Time) {
	set := time.Now()
	n.money.SetClock(func() time.Time { return at.Add(time.Since(set)) })
}

// TestAutoPayRunsOnceAcrossThreeNodes has three nodes' schedulers race for
// the same due one-off orders: each runs once, pays once, is announced once.
func TestAutoPayRunsOnceAcrossThreeNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	n := nodes[0]
	owner := n.user(t, "Owner")
	const funded, broke = 12, 6
	payers := make([]*client, funded+broke)
	ids := make([]int64, len(payers))
	for i := range payers {
		payers[i] = n.user(t, urlf("Payer%d", i))
		ids[i] = payers[i].id
	}
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": ids})
	owner.must(201, "POST", urlf("/api/rooms/%d/fund", room.ID), map[string]any{"currency": "KRW"}, nil)
	at := time.Now().Add(1500 * time.Millisecond).Format(time.RFC3339Nano)
	for i, p := range payers {
		if i < funded {
			p.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 5000, "idempotency_key": "top-up"}, nil)
		}
		p.must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 3000, "at": at}, nil)
	}

	eventually(t, "every run to finish", func() bool {
		for _, p := range payers {
			s := p.schedules()[0]
			if len(s.Runs) == 0 || s.Runs[0].Status == "pending" {
				return false
			}
		}
		return true
	})
	for i, p := range payers {
		s := p.schedules()[0]
		if s.State != "finished" || s.NextRun != nil || len(s.Runs) != 1 {
			t.Fatalf("payer %d: schedule %+v, want finished after exactly one run", i, s)
		}
		r := s.Runs[0]
		switch {
		case i < funded && (r.Status != "done" || r.TransferID == 0 || p.balance() != 2000):
			t.Fatalf("funded payer %d: run %+v, balance %d", i, r, p.balance())
		case i >= funded && (r.Status != "failed" || r.Reason != "insufficient_funds" || p.balance() != 0):
			t.Fatalf("broke payer %d: run %+v, balance %d", i, r, p.balance())
		}
	}
	if f := owner.fund(room.ID); f.Balance != funded*3000 {
		t.Fatalf("fund holds %d, want %d", f.Balance, funded*3000)
	}
	eventually(t, "the announcements", func() bool {
		return len(feeEvents(owner, room.ID, "dues")) >= funded && len(feeEvents(owner, room.ID, "autopay_failed")) >= broke
	})
	time.Sleep(500 * time.Millisecond) // several more ticks on every node
	if paid, failed := feeEvents(owner, room.ID, "dues"), feeEvents(owner, room.ID, "autopay_failed"); len(paid) != funded || len(failed) != broke {
		t.Fatalf("%d payment and %d failure announcements, want %d and %d", len(paid), len(failed), funded, broke)
	}
	var runs float64
	for _, node := range nodes {
		for _, st := range []string{"done", "failed", "skipped"} {
			runs += metricValue(t, node, `moim_fee_schedule_runs_total{status="`+st+`"}`)
		}
	}
	if runs != funded+broke {
		t.Fatalf("the three nodes finished %v runs, want %d", runs, funded+broke)
	}
	checkBooks(t, n)
}

// TestMonthlyAutoPayRetriesAndDueDayReminder moves the scheduler's clock
// through two due days: a run without money fails, is announced and is
// retried with the next run; a member who paid by hand is skipped; the
// due day's reminder goes out once.
func TestMonthlyAutoPayRetriesAndDueDayReminder(t *testing.T) {
	nodes := startCluster(t, 2)
	n := nodes[0]
	owner, payer, manual := n.user(t, "Owner"), n.user(t, "Payer"), n.user(t, "Manual")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{payer.id, manual.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	owner.must(200, "PUT", rp+"/dues", map[string]any{"amount": 10000, "period": "monthly", "due_day": 31}, nil)
	var ps, ms teststack.Schedule
	payer.must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 10000, "day_of_month": 31}, &ps)
	manual.must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 10000, "day_of_month": 31}, &ms)
	first := *ps.NextRun
	period1 := first.In(kst).Format("2006-01")
	manual.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "d1"}, nil)
	manual.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 10000, "period": period1, "idempotency_key": "by-hand"}, nil)

	for _, node := range nodes {
		setClock(node, first.Add(time.Minute))
	}
	eventually(t, "the first runs", func() bool {
		p, m := payer.schedules()[0], manual.schedules()[0]
		return len(p.Runs) == 1 && p.Runs[0].Status != "pending" && len(m.Runs) == 1 && m.Runs[0].Status != "pending"
	})
	p, m := payer.schedules()[0], manual.schedules()[0]
	if r := p.Runs[0]; r.Status != "failed" || r.Reason != "insufficient_funds" || r.Period != period1 {
		t.Fatalf("payer's first run %+v", r)
	}
	if r := m.Runs[0]; r.Status != "skipped" || r.Reason != "already_paid" || manual.balance() != 40000 {
		t.Fatalf("manual payer's first run %+v, balance %d", r, manual.balance())
	}
	second := *p.NextRun
	if p.State != "active" || !second.After(first) || second.In(kst).Day() != time.Date(second.In(kst).Year(), second.In(kst).Month()+1, 0, 0, 0, 0, 0, kst).Day() {
		t.Fatalf("after a failed run the order should go on to the next month's last day: %+v", p)
	}
	eventually(t, "the failure announcement", func() bool { return len(feeEvents(owner, room.ID, "autopay_failed")) == 1 })
	if f := feeEvents(owner, room.ID, "autopay_failed")[0]; f.Fee["user"] != float64(payer.id) || f.Fee["retry"] != true || f.Fee["reason"] != "insufficient_funds" {
		t.Fatalf("failure announcement %+v", f)
	}

	// Nine o'clock on the due day: the reminder names who has not paid.
	for _, node := range nodes {
		setClock(node, first.Add(3*time.Hour+time.Minute))
	}
	eventually(t, "the due-day reminder", func() bool { return len(feeEvents(owner, room.ID, "reminder")) >= 1 })
	time.Sleep(500 * time.Millisecond)
	reminders := feeEvents(owner, room.ID, "reminder")
	if len(reminders) != 1 {
		t.Fatalf("%d reminders for one due day, want 1", len(reminders))
	}
	unpaid := reminders[0].Fee["unpaid"].([]any)
	if len(unpaid) != 2 || reminders[0].Fee["period"] != period1 {
		t.Fatalf("reminder %+v, want Owner and Payer named for %s", reminders[0], period1)
	}

	payer.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 25000, "idempotency_key": "d1"}, nil)
	for _, node := range nodes {
		setClock(node, second.Add(time.Minute))
	}
	eventually(t, "the second run and the retry", func() bool {
		runs := payer.schedules()[0].Runs
		return len(runs) == 2 && runs[0].Status != "pending" && runs[1].Status != "pending"
	})
	runs := payer.schedules()[0].Runs
	if runs[0].Status != "done" || runs[0].Attempt != 1 || runs[1].Status != "done" || runs[1].Attempt != 2 || runs[1].Period != period1 {
		t.Fatalf("runs after the second due day %+v, want the new run and the retried one done", runs)
	}
	if b := payer.balance(); b != 5000 {
		t.Fatalf("payer's wallet %d, want 25000 - 2×10000", b)
	}
	var st struct {
		Members []struct {
			UserID int64  `json:"user_id"`
			State  string `json:"state"`
		} `json:"members"`
	}
	payer.must(200, "GET", rp+"/dues/status?period="+period1, nil, &st)
	for _, mm := range st.Members {
		if mm.UserID == payer.id && mm.State != "paid" {
			t.Fatalf("payer's %s dues are %s after the retry", period1, mm.State)
		}
	}
	checkBooks(t, n)
}
