package fees_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"moim/internal/testkit"
	"moim/teststack"
)

func TestMoneyRulesAndBadInput(t *testing.T) {
	n := serve(t)
	owner, member := n.User(t, "Owner"), n.User(t, "Member")
	room := n.CreateRoom(owner, map[string]any{"name": "Club", "member_ids": []int64{member.ID}})
	rp := fmt.Sprintf("/api/rooms/%d", room.ID)
	owner.Must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	member.Must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 1000, "idempotency_key": "d1"}, nil)

	// Overdraft: refused, nothing changes, and the key keeps its answer.
	member.Fails(409, "insufficient_funds", "POST", rp+"/fund/pay", map[string]any{"amount": 5000, "idempotency_key": "big"})
	member.Must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 10000, "idempotency_key": "d2"}, nil)
	member.Fails(409, "insufficient_funds", "POST", rp+"/fund/pay", map[string]any{"amount": 5000, "idempotency_key": "big"})
	if b, f := teststack.Balance(member), teststack.FundOf(member, room.ID).Balance; b != 11000 || f != 0 {
		t.Fatalf("after refusals: wallet %d, fund %d", b, f)
	}
	member.Must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 5000, "idempotency_key": "big-2"}, nil)
	member.Fails(409, "idempotency_conflict", "POST", rp+"/fund/pay", map[string]any{"amount": 4000, "idempotency_key": "big-2"})
	owner.Fails(409, "insufficient_funds", "POST", rp+"/fund/spend", map[string]any{"amount": 5001, "memo": "too much", "idempotency_key": "s"})

	bad := []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"amount": 0, "idempotency_key": "k"}, "invalid_amount"},
		{map[string]any{"amount": -100, "idempotency_key": "k"}, "invalid_amount"},
		{map[string]any{"amount": 100_000_001, "idempotency_key": "k"}, "invalid_amount"},
		{map[string]any{"amount": 1.5, "idempotency_key": "k"}, "bad_request"},
		{map[string]any{"amount": "100", "idempotency_key": "k"}, "bad_request"},
		{map[string]any{"amount": 1e20, "idempotency_key": "k"}, "bad_request"},
		{map[string]any{"amount": 100, "idempotency_key": ""}, "validation"},
		{map[string]any{"amount": 100, "idempotency_key": "k", "period": "2026-13"}, "invalid_period"},
		{map[string]any{"amount": 100, "idempotency_key": "k", "period": "November"}, "invalid_period"},
	}
	for _, b := range bad {
		member.Fails(400, b.code, "POST", rp+"/fund/pay", b.body)
	}
	owner.Fails(400, "validation", "POST", rp+"/fund/spend", map[string]any{"amount": 100, "idempotency_key": "k"})
	owner.Fails(400, "validation", "POST", rp+"/fund/spend", map[string]any{"amount": 100, "memo": strings.Repeat("가", 201), "idempotency_key": "k"})
	owner.Fails(404, "not_found", "POST", rp+"/fund/refund", map[string]any{"user_id": 987654, "amount": 100, "memo": "x", "idempotency_key": "k"})
	member.Fails(403, "forbidden", "POST", rp+"/fund/spend", map[string]any{"amount": 100, "memo": "mine", "idempotency_key": "k"})
	member.Fails(403, "forbidden", "POST", rp+"/fund/refund", map[string]any{"user_id": member.ID, "amount": 100, "memo": "mine", "idempotency_key": "k"})
	n.User(t, "Eve").Fails(403, "not_member", "POST", rp+"/fund/pay", map[string]any{"amount": 100, "idempotency_key": "k"})
	owner.Fails(404, "not_found", "GET", "/api/rooms/999999/fund", nil)
	if b, f := teststack.Balance(member), teststack.FundOf(member, room.ID).Balance; b != 6000 || f != 5000 {
		t.Fatalf("bad requests changed money: wallet %d, fund %d", b, f)
	}
	teststack.CheckBooks(t, n.DB)
}

func TestRepeatedKeyConcurrentlyMovesMoneyOnce(t *testing.T) {
	n := serve(t)
	c := n.User(t, "Payer")
	var wg sync.WaitGroup
	ids := make([]int64, 10)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tv teststack.Transfer
			status, raw := c.Raw("POST", "/api/wallet/topups", map[string]any{"amount": 7000, "idempotency_key": "same"})
			if status != 200 && status != 201 {
				t.Errorf("repeat %d: %d %s", i, status, raw)
				return
			}
			_ = json.Unmarshal(raw, &tv)
			ids[i] = tv.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == 0 {
			t.Fatalf("ten concurrent repeats answered transfers %v, want one", ids)
		}
	}
	if b := teststack.Balance(c); b != 7000 {
		t.Fatalf("balance %d after ten repeats of one 7000 top-up", b)
	}
	if done, ok := c.Metrics().Sample(`moim_fee_transfers_total{kind="topup",result="done"}`); !ok || done != 1 {
		t.Fatalf("metrics count %v credited top-ups, want 1", done)
	}
	teststack.CheckBooks(t, n.DB)
}

// TestHotFundUnderConcurrentPayersAndSpends has 200 members pay into one
// fund at once while an admin spends from it: no lost update, no error
// surfaced, balances exactly as the successful transfers say.
func TestHotFundUnderConcurrentPayersAndSpends(t *testing.T) {
	n := serve(t)
	owner := n.User(t, "Owner")
	const payers = 200
	people := make([]*testkit.Client, payers)
	ids := make([]int64, payers)
	var wg sync.WaitGroup
	for i := range people {
		wg.Add(1)
		go func() {
			defer wg.Done()
			people[i] = n.User(t, fmt.Sprint("P", i))
			ids[i] = people[i].ID
		}()
	}
	wg.Wait()
	room := n.CreateRoom(owner, map[string]any{"name": "Big club", "member_ids": ids})
	rp := fmt.Sprintf("/api/rooms/%d", room.ID)
	owner.Must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	for _, p := range people {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 1000, "idempotency_key": "d"}, nil)
		}()
	}
	wg.Wait()
	var spent, spendsOK int64
	var mu sync.Mutex
	for i, p := range people {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if status, raw := p.Raw("POST", rp+"/fund/pay", map[string]any{"amount": 700, "idempotency_key": "p"}); status != 201 {
				t.Errorf("payer %d: %d %s", i, status, raw)
			}
		}()
		go func() {
			defer wg.Done()
			status, raw := owner.Raw("POST", rp+"/fund/spend", map[string]any{"amount": 300, "memo": "balls", "idempotency_key": fmt.Sprint("s", i)})
			switch {
			case status == 201:
				mu.Lock()
				spent += 300
				spendsOK++
				mu.Unlock()
			case status == 409 && strings.Contains(string(raw), "insufficient_funds"):
			default:
				t.Errorf("spend %d: %d %s", i, status, raw)
			}
		}()
	}
	wg.Wait()
	if f := teststack.FundOf(owner, room.ID); f.Balance != payers*700-spent || f.TotalIn != payers*700 || f.TotalOut != spent {
		t.Fatalf("fund %+v after %d payments of 700 and %d spends of 300", f, payers, spendsOK)
	}
	for _, p := range people[:10] {
		if b := teststack.Balance(p); b != 300 {
			t.Fatalf("payer wallet %d, want 300", b)
		}
	}
	teststack.CheckBooks(t, n.DB)
}

type duesStatus struct {
	Period  string `json:"period"`
	Amount  int64  `json:"amount"`
	DueDate string `json:"due_date"`
	Members []struct {
		UserID int64  `json:"user_id"`
		Name   string `json:"name"`
		Due    int64  `json:"due"`
		Paid   int64  `json:"paid"`
		State  string `json:"state"`
	} `json:"members"`
	Totals struct {
		Due         int64 `json:"due"`
		Paid        int64 `json:"paid"`
		Members     int   `json:"members"`
		PaidMembers int   `json:"paid_members"`
	} `json:"totals"`
}

func TestDuesPolicyAndStatus(t *testing.T) {
	n := serve(t)
	owner, payer, partial := n.User(t, "Owner"), n.User(t, "Payer"), n.User(t, "Partial")
	room := n.CreateRoom(owner, map[string]any{"name": "Club", "member_ids": []int64{payer.ID, partial.ID}})
	rp := fmt.Sprintf("/api/rooms/%d", room.ID)
	owner.Must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	kst := time.FixedZone("KST", 9*3600)
	now := time.Now().In(kst)
	month := now.Format("2006-01")
	lastDay := time.Date(now.Year(), now.Month()+1, 0, 0, 0, 0, 0, kst).Format("2006-01-02")
	nextMonth := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, kst).Format("2006-01")

	payer.Fails(403, "forbidden", "PUT", rp+"/dues", map[string]any{"amount": 30000, "period": "monthly", "due_day": 31})
	owner.Fails(400, "invalid_amount", "PUT", rp+"/dues", map[string]any{"amount": 0, "period": "monthly", "due_day": 1})
	owner.Fails(400, "validation", "PUT", rp+"/dues", map[string]any{"amount": 100, "period": "daily", "due_day": 1})
	owner.Fails(400, "validation", "PUT", rp+"/dues", map[string]any{"amount": 100, "period": "monthly", "due_day": 32})
	payer.Fails(404, "no_dues", "GET", rp+"/dues/status", nil)

	var p struct {
		Amount int64  `json:"amount"`
		From   string `json:"effective_from"`
	}
	owner.Must(200, "PUT", rp+"/dues", map[string]any{"amount": 30000, "period": "monthly", "due_day": 31}, &p)
	if p.From != month {
		t.Fatalf("the first policy starts %q, want this month %q", p.From, month)
	}
	owner.Must(200, "PUT", rp+"/dues", map[string]any{"amount": 40000, "period": "monthly", "due_day": 10}, &p)
	if p.From != nextMonth {
		t.Fatalf("a change starts %q, want next month %q", p.From, nextMonth)
	}
	var d struct {
		Current struct{ Amount int64 } `json:"current"`
		Next    *struct {
			Amount int64
			From   string `json:"effective_from"`
		} `json:"next"`
	}
	payer.Must(200, "GET", rp+"/dues", nil, &d)
	if d.Current.Amount != 30000 || d.Next == nil || d.Next.Amount != 40000 || d.Next.From != nextMonth {
		t.Fatalf("dues %+v", d)
	}

	payer.Must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "d"}, nil)
	partial.Must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "d"}, nil)
	payer.Must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 20000, "idempotency_key": "a"}, nil)
	payer.Must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 10000, "idempotency_key": "b"}, nil)
	partial.Must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 10000, "idempotency_key": "a"}, nil)
	partial.Must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 30000, "period": nextMonth, "idempotency_key": "advance"}, nil)

	var s duesStatus
	partial.Must(200, "GET", rp+"/dues/status", nil, &s)
	state := map[int64]string{}
	for _, m := range s.Members {
		state[m.UserID] = m.State
	}
	if s.Period != month || s.Amount != 30000 || s.DueDate != lastDay || state[payer.ID] != "paid" || state[partial.ID] != "partial" || state[owner.ID] != "unpaid" {
		t.Fatalf("status %+v", s)
	}
	if s.Totals.Members != 3 || s.Totals.PaidMembers != 1 || s.Totals.Paid != 40000 || s.Totals.Due != 90000 {
		t.Fatalf("totals %+v", s.Totals)
	}
	partial.Must(200, "GET", rp+"/dues/status?period="+nextMonth, nil, &s)
	if s.Amount != 40000 || s.Totals.Paid != 30000 {
		t.Fatalf("next month's status %+v", s)
	}
	if f := teststack.FundOf(partial, room.ID); f.Period != month || len(f.Paid) != 2 || f.Paid[0].Paid+f.Paid[1].Paid != 40000 {
		t.Fatalf("fund's paid totals for %s: %+v", month, f)
	}
	partial.Fails(404, "no_dues", "GET", rp+"/dues/status?period=2020-01", nil)
	partial.Fails(400, "invalid_period", "GET", rp+"/dues/status?period=2026-13", nil)
	n.User(t, "Eve").Fails(403, "not_member", "GET", rp+"/dues/status", nil)

	// A weekly policy due on Monday: after Monday, unpaid is overdue.
	weekly := n.CreateRoom(owner, map[string]any{"name": "Weekly", "member_ids": []int64{payer.ID}})
	wp := fmt.Sprintf("/api/rooms/%d", weekly.ID)
	owner.Must(200, "PUT", wp+"/dues", map[string]any{"amount": 5000, "period": "weekly", "due_day": 1}, nil)
	payer.Must(200, "GET", wp+"/dues/status", nil, &s)
	y, w := now.ISOWeek()
	want := "overdue"
	if now.Weekday() == time.Monday {
		want = "unpaid"
	}
	for _, m := range s.Members {
		if m.State != want {
			t.Fatalf("weekly status %+v; want every member %s", s, want)
		}
	}
	if s.Period != fmt.Sprintf("%d-W%02d", y, w) {
		t.Fatalf("weekly period %q", s.Period)
	}
}

// TestRefundsCappedAtWhatTheMemberPaid: an owner who paid nothing cannot
// refund herself the fund; a member gets back at most what they paid for
// the period; a refunded member is no longer "paid"; concurrent refunds
// cannot together pass the cap.
func TestRefundsCappedAtWhatTheMemberPaid(t *testing.T) {
	n := serve(t)
	owner, member := n.User(t, "Owner"), n.User(t, "Member")
	room := n.CreateRoom(owner, map[string]any{"name": "Club", "member_ids": []int64{member.ID}})
	rp := fmt.Sprintf("/api/rooms/%d", room.ID)
	owner.Must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	owner.Must(200, "PUT", rp+"/dues", map[string]any{"amount": 30000, "period": "monthly", "due_day": 28}, nil)
	member.Must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 100000, "idempotency_key": "t"}, nil)
	// This period's and next period's dues (the policy applies from now on).
	now := time.Now().In(kst)
	cur, next := now.Format("2006-01"), time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, kst).Format("2006-01")
	member.Must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 30000, "period": cur, "idempotency_key": "p1"}, nil)
	member.Must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 30000, "period": next, "idempotency_key": "p2"}, nil)

	owner.Fails(409, "refund_exceeds_paid", "POST", rp+"/fund/refund", map[string]any{"user_id": owner.ID, "amount": 1000, "memo": "mine", "idempotency_key": "r0"})
	owner.Fails(409, "refund_exceeds_paid", "POST", rp+"/fund/refund", map[string]any{"user_id": member.ID, "amount": 30001, "memo": "too much", "idempotency_key": "r1"})
	// The same key keeps its refusal.
	owner.Fails(409, "refund_exceeds_paid", "POST", rp+"/fund/refund", map[string]any{"user_id": member.ID, "amount": 30001, "memo": "too much", "idempotency_key": "r1"})
	// Default period: the latest paid (next), netted in the status.
	var r struct {
		Period string `json:"period"`
	}
	owner.Must(201, "POST", rp+"/fund/refund", map[string]any{"user_id": member.ID, "amount": 30000, "memo": "여행 취소", "idempotency_key": "r2"}, &r)
	if paid, state := teststack.MemberDues(owner, room.ID, member.ID, next); r.Period != next || paid != 0 || state == "paid" {
		t.Fatalf("after a full refund for %s: paid %d, state %q", r.Period, paid, state)
	}
	if paid, state := teststack.MemberDues(owner, room.ID, member.ID, cur); paid != 30000 || state != "paid" {
		t.Fatalf("%s after refunding %s: paid %d, state %q", cur, next, paid, state)
	}
	owner.Fails(409, "refund_exceeds_paid", "POST", rp+"/fund/refund", map[string]any{"user_id": member.ID, "amount": 1, "period": next, "memo": "again", "idempotency_key": "r3"})

	// Ten concurrent refunds of 5,000 against 30,000 paid for this period: six pass.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 10 {
		wg.Go(func() {
			status, raw := owner.Raw("POST", rp+"/fund/refund", map[string]any{"user_id": member.ID, "amount": 5000, "period": cur, "memo": "part", "idempotency_key": fmt.Sprint("c", i)})
			switch {
			case status == 201:
				mu.Lock()
				ok++
				mu.Unlock()
			case status != 409 || !strings.Contains(string(raw), "refund_exceeds_paid"):
				t.Errorf("refund %d: %d %s", i, status, raw)
			}
		})
	}
	wg.Wait()
	if ok != 6 || teststack.FundOf(member, room.ID).Balance != 0 || teststack.Balance(member) != 100000 {
		t.Fatalf("%d concurrent refunds passed, fund %d, wallet %d; want 6, 0, 100000", ok, teststack.FundOf(member, room.ID).Balance, teststack.Balance(member))
	}
	teststack.CheckBooks(t, n.DB)
}

// TestWalletPIN: once set, money moves need the PIN; five wrong ones,
// even at once, lock them for ten minutes with Retry-After.
func TestWalletPIN(t *testing.T) {
	n := serve(t)
	u, peer := n.User(t, "Payer"), n.User(t, "Peer")
	u.Must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 20000, "idempotency_key": "t"}, nil)
	u.Fails(400, "validation", "PUT", "/api/wallet/pin", map[string]any{"pin": "12345"})
	u.Fails(400, "validation", "PUT", "/api/wallet/pin", map[string]any{"pin": "12345a"})
	u.Must(204, "PUT", "/api/wallet/pin", map[string]any{"pin": "482913"}, nil)
	u.Fails(401, "pin_required", "PUT", "/api/wallet/pin", map[string]any{"pin": "111111"})
	send := map[string]any{"to_user_id": peer.ID, "amount": 1000, "idempotency_key": "s1"}
	u.Fails(401, "pin_required", "POST", "/api/wallet/transfers", send)
	u.Header = map[string][]string{"X-Wallet-PIN": {"482913"}}
	u.Must(201, "POST", "/api/wallet/transfers", send, nil)
	u.Must(201, "POST", "/api/wallet/withdrawals", map[string]any{"amount": 1000, "idempotency_key": "w1"}, nil)

	u.Header = map[string][]string{"X-Wallet-PIN": {"000000"}}
	var wg sync.WaitGroup
	statuses := make([]int, 5)
	for i := range statuses {
		wg.Go(func() {
			statuses[i], _ = u.Raw("POST", "/api/wallet/transfers", map[string]any{"to_user_id": peer.ID, "amount": 1, "idempotency_key": fmt.Sprint("g", i)})
		})
	}
	wg.Wait()
	locked := 0
	for _, s := range statuses {
		if s == 429 {
			locked++
		} else if s != 403 {
			t.Fatalf("wrong PINs answered %v", statuses)
		}
	}
	if locked != 1 {
		t.Fatalf("five wrong PINs at once answered %v, want exactly one 429 (the fifth)", statuses)
	}
	// Locked now, even with the right PIN, and the answer says for how long.
	u.Header = map[string][]string{"X-Wallet-PIN": {"482913"}}
	req, _ := http.NewRequest("POST", n.Base+"/api/wallet/transfers", strings.NewReader(`{"to_user_id":`+fmt.Sprint(peer.ID)+`,"amount":1,"idempotency_key":"s2"}`))
	req.Header.Set("Authorization", "Bearer "+u.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Wallet-PIN", "482913")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 429 || ra < 500 || ra > 601 {
		t.Fatalf("while locked: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if teststack.Balance(u) != 18000 || teststack.Balance(peer) != 1000 {
		t.Fatalf("wallets %d and %d", teststack.Balance(u), teststack.Balance(peer))
	}
}
