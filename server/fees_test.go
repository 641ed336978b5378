package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"moim/fees"
	"moim/teststack"
)

// balance is c's wallet balance.
func (c *client) balance() int64 { return teststack.Balance(c.kit()) }

// fund is room's fund as c sees it.
func (c *client) fund(room int64) teststack.Fund { return teststack.FundOf(c.kit(), room) }

// checkBooks asserts the ledger's invariants on n's database.
func checkBooks(t *testing.T, n *testNode) { teststack.CheckBooks(t, n.backends.sql) }

var _ = alsoOn(onMemory|onCluster, TestFundPaySpendRefundAndAnnouncements)

func TestFundPaySpendRefundAndAnnouncements(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, member := n.user(t, "총무"), n.user(t, "Member")
	room := owner.createRoom(map[string]any{"name": "Tennis", "member_ids": []int64{member.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	wm := n.connect(member)

	member.fails(404, "no_fund", "POST", rp+"/fund/pay", map[string]any{"amount": 1000, "idempotency_key": "p0"})
	member.fails(403, "forbidden", "POST", rp+"/fund", map[string]any{"currency": "KRW"})
	var f teststack.Fund
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, &f)
	owner.fails(409, "fund_exists", "POST", rp+"/fund", map[string]any{"currency": "KRW"})

	if member.balance() != 0 {
		t.Fatal("a new wallet is not empty")
	}
	var dep, again teststack.Transfer
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
