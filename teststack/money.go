package teststack

import (
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"moim/internal/testkit"
)

// Fund is a room's fund as GET /api/rooms/{id}/fund shows it.
type Fund struct {
	Balance  int64  `json:"balance"`
	TotalIn  int64  `json:"total_in"`
	TotalOut int64  `json:"total_out"`
	Period   string `json:"period"`
	Paid     []struct {
		UserID int64 `json:"user_id"`
		Paid   int64 `json:"paid"`
	} `json:"paid"`
}

// Transfer is a money move as the API answers it.
type Transfer struct {
	ID     int64  `json:"id"`
	Kind   string `json:"kind"`
	Amount int64  `json:"amount"`
}

// Schedule is an auto-pay order with its runs.
type Schedule struct {
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

// Balance is c's wallet balance.
func Balance(c *testkit.Client) int64 {
	c.T.Helper()
	var w struct{ Balance int64 }
	c.Must(200, "GET", "/api/wallet", nil, &w)
	return w.Balance
}

// FundOf is room's fund as c sees it.
func FundOf(c *testkit.Client, room int64) Fund {
	c.T.Helper()
	var f Fund
	c.Must(200, "GET", fmt.Sprintf("/api/rooms/%d/fund", room), nil, &f)
	return f
}

// Schedules are c's auto-pay orders.
func Schedules(c *testkit.Client) []Schedule {
	c.T.Helper()
	var out struct {
		Schedules []Schedule `json:"schedules"`
	}
	c.Must(200, "GET", "/api/schedules", nil, &out)
	return out.Schedules
}

// CheckBooks asserts the ledger's invariants straight from the database:
// every transfer has two entries summing to zero, every balance equals the
// sum of its entries, and all balances together sum to zero (the external
// account is minus what came in plus what was spent out).
func CheckBooks(t testing.TB, db *gorm.DB) {
	t.Helper()
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

// DuesStatus is each member's dues for a period, as
// GET /api/rooms/{id}/dues/status shows them.
type DuesStatus struct {
	Members []struct {
		UserID int64  `json:"user_id"`
		Paid   int64  `json:"paid"`
		State  string `json:"state"`
	} `json:"members"`
}

// MemberDues is what user paid for period into room's fund and their
// state ("paid", "partial", …), from the dues status c sees.
func MemberDues(c *testkit.Client, room, user int64, period string) (int64, string) {
	c.T.Helper()
	var s DuesStatus
	c.Must(200, "GET", fmt.Sprintf("/api/rooms/%d/dues/status?period=%s", room, period), nil, &s)
	for _, m := range s.Members {
		if m.UserID == user {
			return m.Paid, m.State
		}
	}
	c.T.Fatalf("user %d not in the status of room %d", user, room)
	return 0, ""
}
