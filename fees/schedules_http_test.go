package fees_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"moim/internal/testkit"
	"moim/teststack"
)

func TestSchedulesAPIAndAuthorization(t *testing.T) {
	n := serve(t)
	owner, payer, outsider := n.User(t, "Owner"), n.User(t, "Payer"), n.User(t, "Outsider")
	room := n.CreateRoom(owner, map[string]any{"name": "Club", "member_ids": []int64{payer.ID}})
	bare := n.CreateRoom(owner, map[string]any{"name": "No fund", "member_ids": []int64{payer.ID}})
	owner.Must(201, "POST", fmt.Sprintf("/api/rooms/%d/fund", room.ID), map[string]any{"currency": "KRW"}, nil)

	var s teststack.Schedule
	payer.Must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 10000, "day_of_month": 31}, &s)
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
		payer.Fails(bad.status, bad.code, "POST", "/api/schedules", bad.body)
	}
	outsider.Fails(403, "not_member", "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 100, "day_of_month": 5})
	payer.Fails(400, "validation", "POST", "/api/wallet/topups", map[string]any{"amount": 100, "idempotency_key": "auto:1:1"})

	if got := teststack.Schedules(payer); len(got) != 1 || got[0].ID != s.ID {
		t.Fatalf("payer's schedules %+v", got)
	}
	if got := teststack.Schedules(outsider); len(got) != 0 {
		t.Fatalf("someone else's schedules were listed: %+v", got)
	}
	outsider.Fails(403, "forbidden", "DELETE", fmt.Sprintf("/api/schedules/%d", s.ID), nil)
	owner.Fails(403, "forbidden", "DELETE", fmt.Sprintf("/api/schedules/%d", s.ID), nil)
	payer.Fails(404, "not_found", "DELETE", "/api/schedules/987654", nil)
	payer.Must(204, "DELETE", fmt.Sprintf("/api/schedules/%d", s.ID), nil, nil)
	payer.Must(204, "DELETE", fmt.Sprintf("/api/schedules/%d", s.ID), nil, nil)
	if got := teststack.Schedules(payer); got[0].State != "cancelled" || got[0].NextRun != nil {
		t.Fatalf("cancelled schedule %+v", got[0])
	}
}

// TestCancelRacesTheScheduler cancels orders while they fall due: each is
// either run once or not at all, never twice.
func TestCancelRacesTheScheduler(t *testing.T) {
	n := serve(t)
	owner, payer := n.User(t, "Owner"), n.User(t, "Payer")
	room := n.CreateRoom(owner, map[string]any{"name": "Club", "member_ids": []int64{payer.ID}})
	owner.Must(201, "POST", fmt.Sprintf("/api/rooms/%d/fund", room.ID), map[string]any{"currency": "KRW"}, nil)
	payer.Must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 100000, "idempotency_key": "d"}, nil)
	at := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	var ss []teststack.Schedule
	for range 10 {
		var s teststack.Schedule
		payer.Must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 1000, "at": at}, &s)
		ss = append(ss, s)
	}
	time.Sleep(900 * time.Millisecond)
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { payer.Must(204, "DELETE", fmt.Sprintf("/api/schedules/%d", s.ID), nil, nil) })
	}
	wg.Wait()
	time.Sleep(time.Second)
	var done int64
	for _, s := range teststack.Schedules(payer) {
		if len(s.Runs) > 1 {
			t.Fatalf("schedule %d ran %d times", s.ID, len(s.Runs))
		}
		if len(s.Runs) == 1 && s.Runs[0].Status == "done" {
			done++
		}
	}
	if b := teststack.Balance(payer); b != 100000-done*1000 {
		t.Fatalf("wallet %d after %d runs of 1000", b, done)
	}
	teststack.CheckBooks(t, n.DB)
}

// TestRoomSchedulesShowTheTreasurerEveryMembersOrders checks the room's
// auto-pay listing: an admin sees every member's orders into the room
// (whose they are, next run, state), a member only their own, an outsider
// nothing; orders into other rooms never show.
func TestRoomSchedulesShowTheTreasurerEveryMembersOrders(t *testing.T) {
	n := serve(t)
	owner, payer, other, outsider := n.User(t, "Owner"), n.User(t, "Payer"), n.User(t, "Other"), n.User(t, "Outsider")
	room := n.CreateRoom(owner, map[string]any{"name": "Club", "member_ids": []int64{payer.ID, other.ID}})
	elsewhere := n.CreateRoom(owner, map[string]any{"name": "Elsewhere", "member_ids": []int64{payer.ID}})
	for _, r := range []int64{room.ID, elsewhere.ID} {
		owner.Must(201, "POST", fmt.Sprintf("/api/rooms/%d/fund", r), map[string]any{"currency": "KRW"}, nil)
	}
	var monthly, once, foreign teststack.Schedule
	payer.Must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 10000, "day_of_month": 25}, &monthly)
	other.Must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 5000, "at": time.Now().Add(48 * time.Hour).Format("2006-01-02")}, &once)
	payer.Must(201, "POST", "/api/schedules", map[string]any{"room_id": elsewhere.ID, "amount": 1000, "day_of_month": 1}, &foreign)
	other.Must(204, "DELETE", fmt.Sprintf("/api/schedules/%d", once.ID), nil, nil)

	type listed struct {
		teststack.Schedule
		UserID int64 `json:"user_id"`
	}
	list := func(c *testkit.Client, query string) ([]listed, string) {
		t.Helper()
		var out struct {
			Schedules  []listed `json:"schedules"`
			NextCursor string   `json:"next_cursor"`
		}
		c.Must(200, "GET", fmt.Sprintf("/api/rooms/%d/schedules", room.ID)+query, nil, &out)
		return out.Schedules, out.NextCursor
	}
	all, next := list(owner, "")
	if len(all) != 2 || next != "" ||
		all[0].ID != once.ID || all[0].UserID != other.ID || all[0].State != "cancelled" || all[0].NextRun != nil ||
		all[1].ID != monthly.ID || all[1].UserID != payer.ID || all[1].State != "active" || all[1].NextRun == nil || all[1].Runs == nil {
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
	outsider.Fails(403, "not_member", "GET", fmt.Sprintf("/api/rooms/%d/schedules", room.ID), nil)
	owner.Fails(400, "validation", "GET", fmt.Sprintf("/api/rooms/%d/schedules?limit=500", room.ID), nil)
}
