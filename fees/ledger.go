// Package fees runs a club's money: members' wallets, each room's fund
// (모임통장) and a double-entry ledger that never lies. Amounts are int64 in
// the currency's minor unit (KRW has none); there are no floats.
package fees

import (
	"time"
)

// Account kinds. An external account stands for money outside Moim (the
// payment provider a top-up comes from and a withdrawal goes to); it alone
// may go below zero, so the sum of all balances is always zero. A hold
// account keeps a user's withdrawals in flight out of their wallet.
const (
	KindWallet   = "wallet"
	KindFund     = "fund"
	KindExternal = "external"
	KindHold     = "hold"
)

// Account is one balance: a user's wallet, a room's fund, or external.
type Account struct {
	ID       int64  `gorm:"primaryKey"`
	Kind     string `gorm:"size:8;not null;uniqueIndex:owner"`
	OwnerID  int64  `gorm:"not null;uniqueIndex:owner"`
	Currency string `gorm:"size:3;not null;uniqueIndex:owner"`
	Balance  int64  `gorm:"not null"`
	// Closed marks a deleted room's fund (always empty): no money moves
	// into or out of it again.
	Closed    bool `gorm:"not null;default:false"`
	CreatedAt time.Time
}

// Transfer kinds, as users see them in the ledger.
const (
	TransferTopUp    = "topup"    // external → wallet, a confirmed payment
	TransferHold     = "hold"     // wallet → hold, a withdrawal in flight
	TransferWithdraw = "withdraw" // hold → external, a withdrawal paid out
	TransferRelease  = "release"  // hold → wallet, a withdrawal that failed
	TransferDues     = "dues"
	TransferSpend    = "spend"
	TransferRefund   = "refund"
)

// Transfer is one money move, or a refused attempt: both are kept under
// the initiator's idempotency key so a retry gets the same answer.
type Transfer struct {
	ID          int64  `gorm:"primaryKey"`
	UserID      int64  `gorm:"not null;uniqueIndex:idem"`
	IdemKey     string `gorm:"size:64;not null;uniqueIndex:idem"`
	RequestHash string `gorm:"size:64;not null"`
	Kind        string `gorm:"size:8;not null"`
	FromAccount int64  `gorm:"not null"`
	ToAccount   int64  `gorm:"not null"`
	Amount      int64  `gorm:"not null"`
	RoomID      int64  `gorm:"not null;index"`
	// MemberID is the member a dues payment or refund concerns.
	MemberID int64  `gorm:"not null"`
	Period   string `gorm:"size:10;not null"`
	Memo     string `gorm:"size:800;not null"`
	// ReceiptID is the upload a spend names as its receipt ("" for none).
	ReceiptID string `gorm:"size:32;not null;default:''"`
	// Refused holds the error code of a refused attempt; empty when done.
	Refused string `gorm:"size:32;not null"`
	// Test marks money from a test provider (the sandbox).
	Test      bool `gorm:"not null;default:false"`
	CreatedAt time.Time
	// Replayed marks an answer given again for a repeated key.
	Replayed bool `gorm:"-"`
}

// Entry is one side of a transfer on one account: negative debits,
// positive credits. Every transfer has exactly two, summing to zero.
type Entry struct {
	ID           int64 `gorm:"primaryKey"`
	TransferID   int64 `gorm:"not null;index"`
	AccountID    int64 `gorm:"not null;index:account_entries,priority:1"`
	Amount       int64 `gorm:"not null"`
	BalanceAfter int64 `gorm:"not null"`
	CreatedAt    time.Time
}

// Outbox holds fee events committed with their money move and not yet
// announced in the room; the relay publishes and marks them.
type Outbox struct {
	ID     int64 `gorm:"primaryKey"`
	RoomID int64 `gorm:"not null"`
	// Body is as long as it needs to be: a reminder names every unpaid
	// member.
	Body string `gorm:"type:mediumtext;not null"`
	Fee  string `gorm:"type:text;not null"` // the event's structured fields, JSON
	// System posts the event as a system message (its fields as the
	// message's "system" object), as for a dues-rule change, rather than
	// a fee card.
	System      bool `gorm:"not null;default:false"`
	PublishedAt *time.Time
	CreatedAt   time.Time
}
