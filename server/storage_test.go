package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMoneyOnADatabaseWithTheServersDefaultCharset runs the money paths a
// Korean club uses on a database made with a bare CREATE DATABASE (latin1
// on MariaDB 10.11): Korean names and memos store, a reminder naming many
// members with long names goes out, and idempotency keys differing only in
// case are different requests. Without a MariaDB it runs on SQLite.
func TestMoneyOnADatabaseWithTheServersDefaultCharset(t *testing.T) {
	cfg := testConfig(t)
	if admin := os.Getenv(envMySQL); admin != "" {
		cfg.MySQLDSN = createDatabaseWith(t, admin, "") // the server's default character set
	}
	n := startTestNode(t, cfg)
	owner := n.user(t, "김총무")
	var ids []int64
	var members []*client
	for i := range 40 {
		m := n.user(t, fmt.Sprintf("%s%02d", strings.Repeat("아주긴이름", 12), i))
		members = append(members, m)
		ids = append(ids, m.id)
	}
	room := owner.createRoom(map[string]any{"name": "테니스 동호회", "member_ids": ids})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	owner.must(200, "PUT", rp+"/dues", map[string]any{"amount": 30000, "period": "monthly", "due_day": 28}, nil)

	m := members[0]
	var a, b paymentView
	m.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 10000, "idempotency_key": "KeyA"}, &a)
	m.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 20000, "idempotency_key": "keya"}, &b)
	if a.ID == b.ID || m.balance() != 30000 {
		t.Fatalf("keys differing in case: top-ups %d and %d, wallet %d", a.ID, b.ID, m.balance())
	}
	m.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 5000, "idempotency_key": "PayA"}, nil)
	m.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 5000, "idempotency_key": "paya"}, nil)
	owner.must(201, "POST", rp+"/fund/spend", map[string]any{"amount": 3000, "memo": "코트 대여료 🎾", "idempotency_key": "s"}, nil)
	var unpaid struct {
		Unpaid []struct{ Name string } `json:"unpaid"`
	}
	owner.must(202, "POST", rp+"/dues/remind", nil, &unpaid)
	if len(unpaid.Unpaid) != 41 {
		t.Fatalf("reminder named %d members, want 41", len(unpaid.Unpaid))
	}
	eventually(t, "the long reminder in the chat", func() bool {
		r := feeEvents(owner, room.ID, "reminder")
		return len(r) == 1 && strings.Contains(r[0].Body, members[39].nameHint())
	})
	if f := owner.fund(room.ID); f.Balance != 7000 {
		t.Fatalf("fund %d, want 7000", f.Balance)
	}
	checkBooks(t, n)
}

// nameHint is a piece of the display name the tests above gave c.
func (c *client) nameHint() string {
	var u struct {
		DisplayName string `json:"display_name"`
	}
	c.must(200, "GET", "/api/me", nil, &u)
	return u.DisplayName
}
