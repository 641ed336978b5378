package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"moim/fees"
)

type walletView struct {
	Balance  int64  `json:"balance"`
	Currency string `json:"currency"`
}

type fundView struct {
	Balance  int64  `json:"balance"`
	TotalIn  int64  `json:"total_in"`
	TotalOut int64  `json:"total_out"`
	Period   string `json:"period"`
	Paid     []struct {
		UserID int64 `json:"user_id"`
		Paid   int64 `json:"paid"`
	} `json:"paid"`
}

type transferView struct {
	ID     int64  `json:"id"`
	Kind   string `json:"kind"`
	Amount int64  `json:"amount"`
}

func (c *client) balance() int64 {
	c.t.Helper()
	var w walletView
	c.must(200, "GET", "/api/wallet", nil, &w)
	return w.Balance
}

func (c *client) fund(room int64) fundView {
	c.t.Helper()
	var f fundView
	c.must(200, "GET", urlf("/api/rooms/%d/fund", room), nil, &f)
	return f
}

// checkBooks asserts the ledger's invariants straight from the database:
// every transfer has two entries summing to zero, every balance equals the
// sum of its entries, and all balances together sum to zero (the external
// account is minus what came in plus what was spent out).
func checkBooks(t *testing.T, n *testNode) {
	t.Helper()
	db := n.backends.sql
	var bad []struct{ TransferID, Legs, Total int64 }
	db.Raw("SELECT transfer_id, COUNT(*) AS legs, SUM(amount) AS total FROM entries GROUP BY transfer_id HAVING COUNT(*) <> 2 OR SUM(amount) <> 0").Scan(&bad)
	if len(bad) > 0 {
		t.Fatalf("transfers without two balancing entries: %+v", bad)
	}
	var drift []struct{ ID, Balance, Sum int64 }
	db.Raw("SELECT a.id, a.balance, COALESCE((SELECT SUM(e.amount) FROM entries e WHERE e.account_id = a.id), 0) AS sum FROM accounts a").Scan(&drift)
	var total int64
	for _, d := range drift {
		if d.Balance != d.Sum {
			t.Fatalf("account %d: balance %d but its entries sum to %d", d.ID, d.Balance, d.Sum)
		}
		total += d.Balance
	}
	if total != 0 {
		t.Fatalf("all balances sum to %d, want 0", total)
	}
	var refused int64
	db.Raw("SELECT COUNT(*) FROM entries e JOIN transfers t ON t.id = e.transfer_id WHERE t.refused <> ''").Scan(&refused)
	if refused != 0 {
		t.Fatalf("%d entries belong to refused transfers", refused)
	}
}

var _ = alsoOn(onMemory|onCluster, TestFundPaySpendRefundAndAnnouncements)

func TestFundPaySpendRefundAndAnnouncements(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, member := n.user(t, "총무"), n.user(t, "Member")
	room := owner.createRoom(map[string]any{"name": "Tennis", "member_ids": []int64{member.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	wm := n.connect(member)

	member.fails(404, "no_fund", "POST", rp+"/fund/pay", map[string]any{"amount": 1000, "idempotency_key": "p0"})
	member.fails(403, "forbidden", "POST", rp+"/fund", map[string]any{"currency": "KRW"})
	var f fundView
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, &f)
	owner.fails(409, "fund_exists", "POST", rp+"/fund", map[string]any{"currency": "KRW"})

	if member.balance() != 0 {
		t.Fatal("a new wallet is not empty")
	}
	var dep, again transferView
	member.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "d1"}, &dep)
	member.must(200, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "d1"}, &again)
	if dep.ID != again.ID || member.balance() != 50000 {
		t.Fatalf("repeated deposit: %+v then %+v, balance %d", dep, again, member.balance())
	}
	member.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 30000, "period": "2026-11", "idempotency_key": "p1"}, nil)
	owner.must(201, "POST", rp+"/fund/spend", map[string]any{"amount": 12000, "memo": "코트 대여 (court)", "idempotency_key": "s1"}, nil)
	owner.must(201, "POST", rp+"/fund/refund", map[string]any{"user_id": member.id, "amount": 5000, "memo": "overpaid", "idempotency_key": "r1"}, nil)
	if f = member.fund(room.ID); f.Balance != 13000 || f.TotalIn != 30000 || f.TotalOut != 17000 {
		t.Fatalf("fund %+v, want balance 13000, in 30000, out 17000", f)
	}
	if b := member.balance(); b != 25000 {
		t.Fatalf("member's wallet %d, want 25000", b)
	}

	// Every money move is announced in the chat, with structured fields.
	want := []struct {
		event  string
		amount float64
		after  float64
	}{{"dues", 30000, 30000}, {"spend", 12000, 18000}, {"refund", 5000, 13000}}
	for _, w := range want {
		var m map[string]any
		for m == nil {
			_ = wm.conn.SetReadDeadline(deadlineIn(5))
			b, err := wm.readRaw()
			if err != nil {
				t.Fatalf("waiting for the %s announcement: %v", w.event, err)
			}
			var probe map[string]any
			_ = json.Unmarshal(b, &probe)
			if probe["type"] == "msg" && probe["kind"] == "fee" {
				m = probe
			}
		}
		fee, _ := m["fee"].(map[string]any)
		if fee["event"] != w.event || fee["amount"] != w.amount || fee["balance_after"] != w.after || fee["currency"] != "KRW" || m["from"] != float64(0) {
			t.Fatalf("announcement %v, want %s of %v leaving %v", m, w.event, w.amount, w.after)
		}
	}

	var ledger struct {
		Entries []fees.Line `json:"entries"`
	}
	member.must(200, "GET", rp+"/fund/ledger", nil, &ledger)
	if len(ledger.Entries) != 3 || ledger.Entries[0].Kind != "refund" || ledger.Entries[0].Amount != -5000 || ledger.Entries[0].BalanceAfter != 13000 ||
		ledger.Entries[2].Kind != "dues" || ledger.Entries[2].Member != "Member" || ledger.Entries[2].Period != "2026-11" {
		t.Fatalf("ledger %+v", ledger.Entries)
	}
	status, raw := member.raw("GET", rp+"/fund/ledger?format=csv", nil)
	csv := string(raw)
	if status != 200 || !strings.HasPrefix(csv, "\ufefftime,kind,member,amount,balance_after,period,memo,note,receipt\n") || !strings.Contains(csv, "코트 대여 (court)") || strings.Count(csv, "\n") != 4 {
		t.Fatalf("csv (%d):\n%s", status, csv)
	}
	var txs struct {
		Transactions []fees.Line `json:"transactions"`
	}
	member.must(200, "GET", "/api/wallet/transactions", nil, &txs)
	if len(txs.Transactions) != 3 || txs.Transactions[0].Amount != 5000 || txs.Transactions[2].Kind != "topup" {
		t.Fatalf("wallet transactions %+v", txs.Transactions)
	}
	n.user(t, "Outsider").fails(403, "not_member", "GET", rp+"/fund", nil)
	checkBooks(t, n)
}

func TestMoneyRulesAndBadInput(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, member := n.user(t, "Owner"), n.user(t, "Member")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{member.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	member.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 1000, "idempotency_key": "d1"}, nil)

	// Overdraft: refused, nothing changes, and the key keeps its answer.
	member.fails(409, "insufficient_funds", "POST", rp+"/fund/pay", map[string]any{"amount": 5000, "idempotency_key": "big"})
	member.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 10000, "idempotency_key": "d2"}, nil)
	member.fails(409, "insufficient_funds", "POST", rp+"/fund/pay", map[string]any{"amount": 5000, "idempotency_key": "big"})
	if b, f := member.balance(), member.fund(room.ID).Balance; b != 11000 || f != 0 {
		t.Fatalf("after refusals: wallet %d, fund %d", b, f)
	}
	member.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 5000, "idempotency_key": "big-2"}, nil)
	member.fails(409, "idempotency_conflict", "POST", rp+"/fund/pay", map[string]any{"amount": 4000, "idempotency_key": "big-2"})
	owner.fails(409, "insufficient_funds", "POST", rp+"/fund/spend", map[string]any{"amount": 5001, "memo": "too much", "idempotency_key": "s"})

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
		member.fails(400, b.code, "POST", rp+"/fund/pay", b.body)
	}
	owner.fails(400, "validation", "POST", rp+"/fund/spend", map[string]any{"amount": 100, "idempotency_key": "k"})
	owner.fails(400, "validation", "POST", rp+"/fund/spend", map[string]any{"amount": 100, "memo": strings.Repeat("가", 201), "idempotency_key": "k"})
	owner.fails(404, "not_found", "POST", rp+"/fund/refund", map[string]any{"user_id": 987654, "amount": 100, "memo": "x", "idempotency_key": "k"})
	member.fails(403, "forbidden", "POST", rp+"/fund/spend", map[string]any{"amount": 100, "memo": "mine", "idempotency_key": "k"})
	member.fails(403, "forbidden", "POST", rp+"/fund/refund", map[string]any{"user_id": member.id, "amount": 100, "memo": "mine", "idempotency_key": "k"})
	n.user(t, "Eve").fails(403, "not_member", "POST", rp+"/fund/pay", map[string]any{"amount": 100, "idempotency_key": "k"})
	owner.fails(404, "not_found", "GET", "/api/rooms/999999/fund", nil)
	if b, f := member.balance(), member.fund(room.ID).Balance; b != 6000 || f != 5000 {
		t.Fatalf("bad requests changed money: wallet %d, fund %d", b, f)
	}
	checkBooks(t, n)
}

func TestRepeatedKeyConcurrentlyMovesMoneyOnce(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	c := n.user(t, "Payer")
	var wg sync.WaitGroup
	ids := make([]int64, 10)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tv transferView
			status, raw := c.raw("POST", "/api/wallet/topups", map[string]any{"amount": 7000, "idempotency_key": "same"})
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
	if b := c.balance(); b != 7000 {
		t.Fatalf("balance %d after ten repeats of one 7000 top-up", b)
	}
	if done := metricValue(t, n, `moim_fee_transfers_total{kind="topup",result="done"}`); done != 1 {
		t.Fatalf("metrics count %v credited top-ups, want 1", done)
	}
	checkBooks(t, n)
}

// TestHotFundUnderConcurrentPayersAndSpends has 200 members pay into one
// fund at once while an admin spends from it: no lost update, no error
// surfaced, balances exactly as the successful transfers say.
func TestHotFundUnderConcurrentPayersAndSpends(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner := n.user(t, "Owner")
	const payers = 200
	people := make([]*client, payers)
	ids := make([]int64, payers)
	var wg sync.WaitGroup
	for i := range people {
		wg.Add(1)
		go func() {
			defer wg.Done()
			people[i] = n.user(t, fmt.Sprint("P", i))
			ids[i] = people[i].id
		}()
	}
	wg.Wait()
	room := owner.createRoom(map[string]any{"name": "Big club", "member_ids": ids})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	for _, p := range people {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 1000, "idempotency_key": "d"}, nil)
		}()
	}
	wg.Wait()
	var spent, spendsOK int64
	var mu sync.Mutex
	for i, p := range people {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if status, raw := p.raw("POST", rp+"/fund/pay", map[string]any{"amount": 700, "idempotency_key": "p"}); status != 201 {
				t.Errorf("payer %d: %d %s", i, status, raw)
			}
		}()
		go func() {
			defer wg.Done()
			status, raw := owner.raw("POST", rp+"/fund/spend", map[string]any{"amount": 300, "memo": "balls", "idempotency_key": fmt.Sprint("s", i)})
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
	if f := owner.fund(room.ID); f.Balance != payers*700-spent || f.TotalIn != payers*700 || f.TotalOut != spent {
		t.Fatalf("fund %+v after %d payments of 700 and %d spends of 300", f, payers, spendsOK)
	}
	for _, p := range people[:10] {
		if b := p.balance(); b != 300 {
			t.Fatalf("payer wallet %d, want 300", b)
		}
	}
	checkBooks(t, n)
}

// TestFeeEventsWaitOutARedisOutage pays dues while Redis is down: the
// money moves (SQL), and the announcement appears in the room exactly
// once after Redis is back.
func TestFeeEventsWaitOutARedisOutage(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	stopRedis := startRedis(t, port, dir)
	cfg := testConfig(t)
	cfg.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	n := startTestNode(t, cfg)
	owner, member := n.user(t, "Owner"), n.user(t, "Member")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{member.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	member.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 10000, "idempotency_key": "d"}, nil)

	stopRedis()
	member.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 4000, "idempotency_key": "p"}, nil)
	if b := member.balance(); b != 6000 {
		t.Fatalf("wallet %d after paying during the outage", b)
	}
	time.Sleep(1500 * time.Millisecond) // the relay tries and fails meanwhile
	startRedis(t, port, dir)

	deadline := time.Now().Add(20 * time.Second)
	for {
		var l messageList
		status, raw := member.raw("GET", rp+"/messages?after=0", nil)
		if status == 200 {
			_ = json.Unmarshal(raw, &l)
			fee := 0
			for _, m := range l.Messages {
				if m.Kind == "fee" {
					fee++
				}
			}
			if fee > 1 {
				t.Fatalf("the payment was announced %d times", fee)
			}
			if fee == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the payment made while Redis was down was never announced (last status %d)", status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkBooks(t, n)
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
	n := startTestNode(t, testConfig(t))
	owner, payer, partial := n.user(t, "Owner"), n.user(t, "Payer"), n.user(t, "Partial")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{payer.id, partial.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	kst := time.FixedZone("KST", 9*3600)
	now := time.Now().In(kst)
	month := now.Format("2006-01")
	lastDay := time.Date(now.Year(), now.Month()+1, 0, 0, 0, 0, 0, kst).Format("2006-01-02")
	nextMonth := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, kst).Format("2006-01")

	payer.fails(403, "forbidden", "PUT", rp+"/dues", map[string]any{"amount": 30000, "period": "monthly", "due_day": 31})
	owner.fails(400, "invalid_amount", "PUT", rp+"/dues", map[string]any{"amount": 0, "period": "monthly", "due_day": 1})
	owner.fails(400, "validation", "PUT", rp+"/dues", map[string]any{"amount": 100, "period": "daily", "due_day": 1})
	owner.fails(400, "validation", "PUT", rp+"/dues", map[string]any{"amount": 100, "period": "monthly", "due_day": 32})
	payer.fails(404, "no_dues", "GET", rp+"/dues/status", nil)

	var p struct {
		Amount int64  `json:"amount"`
		From   string `json:"effective_from"`
	}
	owner.must(200, "PUT", rp+"/dues", map[string]any{"amount": 30000, "period": "monthly", "due_day": 31}, &p)
	if p.From != month {
		t.Fatalf("the first policy starts %q, want this month %q", p.From, month)
	}
	owner.must(200, "PUT", rp+"/dues", map[string]any{"amount": 40000, "period": "monthly", "due_day": 10}, &p)
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
	payer.must(200, "GET", rp+"/dues", nil, &d)
	if d.Current.Amount != 30000 || d.Next == nil || d.Next.Amount != 40000 || d.Next.From != nextMonth {
		t.Fatalf("dues %+v", d)
	}

	payer.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "d"}, nil)
	partial.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "d"}, nil)
	payer.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 20000, "idempotency_key": "a"}, nil)
	payer.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 10000, "idempotency_key": "b"}, nil)
	partial.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 10000, "idempotency_key": "a"}, nil)
	partial.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 30000, "period": nextMonth, "idempotency_key": "advance"}, nil)

	var s duesStatus
	partial.must(200, "GET", rp+"/dues/status", nil, &s)
	state := map[int64]string{}
	for _, m := range s.Members {
		state[m.UserID] = m.State
	}
	if s.Period != month || s.Amount != 30000 || s.DueDate != lastDay || state[payer.id] != "paid" || state[partial.id] != "partial" || state[owner.id] != "unpaid" {
		t.Fatalf("status %+v", s)
	}
	if s.Totals.Members != 3 || s.Totals.PaidMembers != 1 || s.Totals.Paid != 40000 || s.Totals.Due != 90000 {
		t.Fatalf("totals %+v", s.Totals)
	}
	partial.must(200, "GET", rp+"/dues/status?period="+nextMonth, nil, &s)
	if s.Amount != 40000 || s.Totals.Paid != 30000 {
		t.Fatalf("next month's status %+v", s)
	}
	if f := partial.fund(room.ID); f.Period != month || len(f.Paid) != 2 || f.Paid[0].Paid+f.Paid[1].Paid != 40000 {
		t.Fatalf("fund's paid totals for %s: %+v", month, f)
	}
	partial.fails(404, "no_dues", "GET", rp+"/dues/status?period=2020-01", nil)
	partial.fails(400, "invalid_period", "GET", rp+"/dues/status?period=2026-13", nil)
	n.user(t, "Eve").fails(403, "not_member", "GET", rp+"/dues/status", nil)

	// A weekly policy due on Monday: after Monday, unpaid is overdue.
	weekly := owner.createRoom(map[string]any{"name": "Weekly", "member_ids": []int64{payer.id}})
	wp := urlf("/api/rooms/%d", weekly.ID)
	owner.must(200, "PUT", wp+"/dues", map[string]any{"amount": 5000, "period": "weekly", "due_day": 1}, nil)
	payer.must(200, "GET", wp+"/dues/status", nil, &s)
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

func TestOffWalletRecordsWaiversAuditAndReminders(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, cash, excused, late := n.user(t, "Owner"), n.user(t, "Cash"), n.user(t, "Excused"), n.user(t, "Late")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{cash.id, excused.id, late.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	owner.must(200, "PUT", rp+"/dues", map[string]any{"amount": 10000, "period": "monthly", "due_day": 31}, nil)
	month := time.Now().In(time.FixedZone("KST", 9*3600)).Format("2006-01")
	wl := n.connect(late)

	owner.must(201, "POST", rp+"/dues/records", map[string]any{"user_id": cash.id, "period": month, "amount": 10000, "memo": "현금 (cash)"}, nil)
	owner.must(201, "POST", rp+"/dues/records", map[string]any{"user_id": owner.id, "period": month, "amount": 10000}, nil)
	owner.must(201, "POST", rp+"/dues/waivers", map[string]any{"user_id": excused.id, "period": month, "memo": "군 복무 중"}, nil)
	cash.fails(403, "forbidden", "POST", rp+"/dues/records", map[string]any{"user_id": cash.id, "period": month, "amount": 10000})
	owner.fails(400, "invalid_amount", "POST", rp+"/dues/records", map[string]any{"user_id": cash.id, "period": month, "amount": 0})
	owner.fails(400, "validation", "POST", rp+"/dues/waivers", map[string]any{"user_id": cash.id, "period": month, "amount": 5})
	owner.fails(400, "invalid_period", "POST", rp+"/dues/records", map[string]any{"user_id": cash.id, "amount": 100})
	owner.fails(404, "not_found", "POST", rp+"/dues/records", map[string]any{"user_id": 987654, "period": month, "amount": 100})

	var s struct {
		Members []struct {
			UserID        int64  `json:"user_id"`
			Paid          int64  `json:"paid"`
			PaidOffWallet int64  `json:"paid_off_wallet"`
			State         string `json:"state"`
		} `json:"members"`
	}
	cash.must(200, "GET", rp+"/dues/status", nil, &s)
	got := map[int64]string{}
	for _, m := range s.Members {
		got[m.UserID] = m.State
		if m.UserID == cash.id && (m.Paid != 10000 || m.PaidOffWallet != 10000) {
			t.Fatalf("cash member %+v", m)
		}
	}
	if got[cash.id] != "paid" || got[owner.id] != "paid" || got[excused.id] != "waived" || got[late.id] != "unpaid" {
		t.Fatalf("states %v", got)
	}
	if f := cash.fund(room.ID); f.Balance != 0 {
		t.Fatalf("off-wallet records moved the fund to %d", f.Balance)
	}

	var a struct {
		Audit []struct {
			Action string `json:"action"`
			By     int64  `json:"by"`
		} `json:"audit"`
	}
	late.must(200, "GET", rp+"/dues/audit", nil, &a)
	var actions []string
	for _, e := range a.Audit {
		actions = append(actions, e.Action)
	}
	if strings.Join(actions, ",") != "waiver,record,record,policy" || a.Audit[0].By != owner.id {
		t.Fatalf("audit %v", a.Audit)
	}
	n.user(t, "Eve").fails(403, "not_member", "GET", rp+"/dues/audit", nil)

	cash.fails(403, "forbidden", "POST", rp+"/dues/remind", nil)
	var r struct {
		Unpaid []struct {
			UserID int64 `json:"user_id"`
		} `json:"unpaid"`
	}
	owner.must(202, "POST", rp+"/dues/remind", nil, &r)
	if len(r.Unpaid) != 1 || r.Unpaid[0].UserID != late.id {
		t.Fatalf("reminder names %+v, want only Late", r.Unpaid)
	}
	for {
		_ = wl.conn.SetReadDeadline(deadlineIn(5))
		b, err := wl.readRaw()
		if err != nil {
			t.Fatalf("waiting for the reminder: %v", err)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		fee, _ := m["fee"].(map[string]any)
		// The records and the waiver above are announced first.
		if m["type"] != "msg" || m["kind"] != "fee" || fee["event"] != "reminder" {
			continue
		}
		unpaid, _ := fee["unpaid"].([]any)
		if len(unpaid) != 1 || unpaid[0] != float64(late.id) || !strings.Contains(m["body"].(string), "Late") {
			t.Fatalf("reminder message %v", m)
		}
		break
	}
}
