package main

import (
	"sync"
	"testing"
	"time"
)

var kst = time.FixedZone("KST", 9*3600)

type scheduleView struct {
	ID         int64      `json:"id"`
	RoomID     int64      `json:"room_id"`
	Amount     int64      `json:"amount"`
	DayOfMonth int        `json:"day_of_month"`
	NextRun    *time.Time `json:"next_run"`
	State      string     `json:"state"`
	Runs       []struct {
		Period     string `json:"period"`
		Attempt    int    `json:"attempt"`
		Status     string `json:"status"`
		Reason     string `json:"reason"`
		TransferID int64  `json:"transfer_id"`
	} `json:"runs"`
}

func (c *client) schedules() []scheduleView {
	c.t.Helper()
	var out struct {
		Schedules []scheduleView `json:"schedules"`
	}
	c.must(200, "GET", "/api/schedules", nil, &out)
	return out.Schedules
}

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

func TestSchedulesAPIAndAuthorization(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, payer, outsider := n.user(t, "Owner"), n.user(t, "Payer"), n.user(t, "Outsider")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{payer.id}})
	bare := owner.createRoom(map[string]any{"name": "No fund", "member_ids": []int64{payer.id}})
	owner.must(201, "POST", urlf("/api/rooms/%d/fund", room.ID), map[string]any{"currency": "KRW"}, nil)

	var s scheduleView
	payer.must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 10000, "day_of_month": 31}, &s)
	if s.State != "active" || s.NextRun == nil || !s.NextRun.After(time.Now()) {
		t.Fatalf("new schedule %+v", s)
	}
	next := s.NextRun.In(kst)
	lastDay := time.Date(next.Year(), next.Month()+1, 0, 0, 0, 0, 0, kst).Day()
	if next.Day() != lastDay || next.Hour() != 6 {
		t.Fatalf("a day-31 order runs next at %s, want the month's last day (%d) at 06:00 KST", next, lastDay)
	}
	soon := time.Now().Add(time.Hour).Format(time.RFC3339)
	for _, bad := range []struct {
		status int
		code   string
		body   map[string]any
	}{
		{400, "validation", map[string]any{"room_id": room.ID, "amount": 100, "day_of_month": 3, "at": soon}},
		{400, "validation", map[string]any{"room_id": room.ID, "amount": 100}},
		{400, "validation", map[string]any{"room_id": room.ID, "amount": 100, "day_of_month": 32}},
		{400, "validation", map[string]any{"room_id": room.ID, "amount": 100, "day_of_month": -1}},
		{400, "validation", map[string]any{"room_id": room.ID, "amount": 100, "at": "2020-01-01T00:00:00Z"}},
		{400, "validation", map[string]any{"room_id": room.ID, "amount": 100, "at": "next tuesday"}},
		{400, "validation", map[string]any{"room_id": room.ID, "amount": 100, "day_of_month": 5, "until": "2020-01-31"}},
		{400, "invalid_amount", map[string]any{"room_id": room.ID, "amount": 0, "day_of_month": 5}},
		{400, "invalid_amount", map[string]any{"room_id": room.ID, "amount": 100_000_001, "day_of_month": 5}},
		{400, "validation", map[string]any{"amount": 100, "day_of_month": 5}},
		{404, "not_found", map[string]any{"room_id": 987654, "amount": 100, "day_of_month": 5}},
		{404, "no_fund", map[string]any{"room_id": bare.ID, "amount": 100, "day_of_month": 5}},
	} {
		payer.fails(bad.status, bad.code, "POST", "/api/schedules", bad.body)
	}
	outsider.fails(403, "not_member", "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 100, "day_of_month": 5})
	payer.fails(400, "validation", "POST", "/api/wallet/topups", map[string]any{"amount": 100, "idempotency_key": "auto:1:1"})

	if got := payer.schedules(); len(got) != 1 || got[0].ID != s.ID {
		t.Fatalf("payer's schedules %+v", got)
	}
	if got := outsider.schedules(); len(got) != 0 {
		t.Fatalf("someone else's schedules were listed: %+v", got)
	}
	outsider.fails(403, "forbidden", "DELETE", urlf("/api/schedules/%d", s.ID), nil)
	owner.fails(403, "forbidden", "DELETE", urlf("/api/schedules/%d", s.ID), nil)
	payer.fails(404, "not_found", "DELETE", "/api/schedules/987654", nil)
	payer.must(204, "DELETE", urlf("/api/schedules/%d", s.ID), nil, nil)
	payer.must(204, "DELETE", urlf("/api/schedules/%d", s.ID), nil, nil)
	if got := payer.schedules(); got[0].State != "cancelled" || got[0].NextRun != nil {
		t.Fatalf("cancelled schedule %+v", got[0])
	}
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
	var ps, ms scheduleView
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

// TestCancelRacesTheScheduler cancels orders while they fall due: each is
// either run once or not at all, never twice.
func TestCancelRacesTheScheduler(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, payer := n.user(t, "Owner"), n.user(t, "Payer")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{payer.id}})
	owner.must(201, "POST", urlf("/api/rooms/%d/fund", room.ID), map[string]any{"currency": "KRW"}, nil)
	payer.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 100000, "idempotency_key": "d"}, nil)
	at := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	var ss []scheduleView
	for range 10 {
		var s scheduleView
		payer.must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 1000, "at": at}, &s)
		ss = append(ss, s)
	}
	time.Sleep(900 * time.Millisecond)
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { payer.must(204, "DELETE", urlf("/api/schedules/%d", s.ID), nil, nil) })
	}
	wg.Wait()
	time.Sleep(time.Second)
	var done int64
	for _, s := range payer.schedules() {
		if len(s.Runs) > 1 {
			t.Fatalf("schedule %d ran %d times", s.ID, len(s.Runs))
		}
		if len(s.Runs) == 1 && s.Runs[0].Status == "done" {
			done++
		}
	}
	if b := payer.balance(); b != 100000-done*1000 {
		t.Fatalf("wallet %d after %d runs of 1000", b, done)
	}
	checkBooks(t, n)
}

// TestRoomSchedulesShowTheTreasurerEveryMembersOrders checks the room's
// auto-pay listing: an admin sees every member's orders into the room
// (whose they are, next run, state), a member only their own, an outsider
// nothing; orders into other rooms never show.
func TestRoomSchedulesShowTheTreasurerEveryMembersOrders(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, payer, other, outsider := n.user(t, "Owner"), n.user(t, "Payer"), n.user(t, "Other"), n.user(t, "Outsider")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{payer.id, other.id}})
	elsewhere := owner.createRoom(map[string]any{"name": "Elsewhere", "member_ids": []int64{payer.id}})
	for _, r := range []int64{room.ID, elsewhere.ID} {
		owner.must(201, "POST", urlf("/api/rooms/%d/fund", r), map[string]any{"currency": "KRW"}, nil)
	}
	var monthly, once, foreign scheduleView
	payer.must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 10000, "day_of_month": 25}, &monthly)
	other.must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 5000, "at": time.Now().Add(48 * time.Hour).Format("2006-01-02")}, &once)
	payer.must(201, "POST", "/api/schedules", map[string]any{"room_id": elsewhere.ID, "amount": 1000, "day_of_month": 1}, &foreign)
	other.must(204, "DELETE", urlf("/api/schedules/%d", once.ID), nil, nil)

	type listed struct {
		scheduleView
		UserID int64 `json:"user_id"`
	}
	list := func(c *client, query string) ([]listed, string) {
		t.Helper()
		var out struct {
			Schedules  []listed `json:"schedules"`
			NextCursor string   `json:"next_cursor"`
		}
		c.must(200, "GET", urlf("/api/rooms/%d/schedules", room.ID)+query, nil, &out)
		return out.Schedules, out.NextCursor
	}
	all, next := list(owner, "")
	if len(all) != 2 || next != "" ||
		all[0].ID != once.ID || all[0].UserID != other.id || all[0].State != "cancelled" || all[0].NextRun != nil ||
		all[1].ID != monthly.ID || all[1].UserID != payer.id || all[1].State != "active" || all[1].NextRun == nil || all[1].Runs == nil {
		t.Fatalf("the owner sees %+v (next %q), want both members' orders into the room, newest first", all, next)
	}
	first, next := list(owner, "?limit=1")
	rest, last := list(owner, "?limit=1&cursor="+next)
	if len(first) != 1 || first[0].ID != once.ID || len(rest) != 1 || rest[0].ID != monthly.ID || last != "" {
		t.Fatalf("paging: %+v then %+v (cursor %q)", first, rest, last)
	}
	if own, _ := list(payer, ""); len(own) != 1 || own[0].ID != monthly.ID {
		t.Fatalf("a member sees %+v, want only their own order into this room", own)
	}
	outsider.fails(403, "not_member", "GET", urlf("/api/rooms/%d/schedules", room.ID), nil)
	owner.fails(400, "validation", "GET", urlf("/api/rooms/%d/schedules?limit=500", room.ID), nil)
}
