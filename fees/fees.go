package fees

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"moim/api"
	"moim/chatlog"
	"moim/payments"
	"moim/sqldb"
)

// Currency is the only one Moim handles so far; KRW has no minor unit.
const Currency = "KRW"

// kst is Korea's time zone (no daylight saving), which dues periods follow.
var kst = time.FixedZone("KST", 9*60*60)

// Rooms answers who may do what in a room.
type Rooms interface {
	// Role is the user's role in the room; an api error (404, 403
	// not_member) when the room is missing or the user is not in it.
	Role(ctx context.Context, roomID, userID int64) (string, error)
	// DisplayName is a user's name, for announcements.
	DisplayName(ctx context.Context, userID int64) (string, error)
	// DisplayNames maps each of ids that exists to its display name.
	DisplayNames(ctx context.Context, ids []int64) (map[int64]string, error)
	// Roster lists a room's members as the system sees them; callers
	// check the asking user's membership first.
	Roster(ctx context.Context, roomID int64) ([]int64, error)
	// DirectRoom is the 1:1 room of two users, opened on first use.
	DirectRoom(ctx context.Context, userID, peerID int64) (int64, error)
}

// Fees serves wallets, funds and the ledger.
type Fees struct {
	db        *gorm.DB
	rooms     Rooms
	maxAmount int64
	provider  payments.Provider // nil when none is configured
	wake      chan struct{}     // nudges the outbox relay after a commit
	metrics   *metrics
	clock     atomic.Pointer[func() time.Time]
	// receipts finds spends' receipt photos; nil until UseReceipts, and
	// a spend then takes none.
	receipts Receipts
	// stop is called at each named point between a money move's steps
	// (stops.go); nil except in the crash model check, which panics there
	// to leave the database as a killed process would.
	stop func(point string)
	// pinCost is the bcrypt cost of new PIN hashes (UsePINCost).
	pinCost int
}

// Receipts finds the uploads a spend may name as its receipt.
type Receipts interface {
	// Receipt is the metadata of upload id when it was uploaded to room;
	// an api error (validation) when not.
	Receipt(ctx context.Context, id string, room int64) (*chatlog.Attachment, error)
}

// UseReceipts lets spends reference receipt uploads found in r.
func (f *Fees) UseReceipts(r Receipts) { f.receipts = r }

// UsePINCost sets the bcrypt cost wallet PINs are hashed at
// (MOIM_BCRYPT_COST, as passwords; bcrypt.DefaultCost until set).
func (f *Fees) UsePINCost(cost int) { f.pinCost = cost }

// New returns the fees module; maxAmount caps a single transfer and pay
// is the payment provider money enters and leaves through (nil: none, and
// top-ups and withdrawals answer 503). Its metrics register with reg.
func New(db *gorm.DB, rooms Rooms, maxAmount int64, pay payments.Provider, reg prometheus.Registerer) *Fees {
	return &Fees{db: db, rooms: rooms, maxAmount: maxAmount, provider: pay, wake: make(chan struct{}, 1), metrics: newMetrics(reg)}
}

var (
	errInsufficient = api.Conflict("insufficient_funds", "not enough money for this transfer")
	errIdemConflict = api.Conflict("idempotency_conflict", "this idempotency_key was used for a different request; use a new key")
	errSettled      = api.Conflict("payment_settled", "this withdrawal was already paid out or released")
	errRefundCap    = api.Conflict("refund_exceeds_paid", "a refund may return at most what this member paid into the fund for that period, less earlier refunds")
)

// refusals maps a remembered refusal code back to its error.
var refusals = map[string]*api.Error{"insufficient_funds": errInsufficient, "refund_exceeds_paid": errRefundCap, "fund_closed": errFundClosed, "payment_settled": errSettled}

// account returns the account of (kind, owner), creating it when create
// is set (wallets open on first use); nil when it does not exist.
func (f *Fees) account(ctx context.Context, kind string, owner int64, create bool) (*Account, error) {
	var a Account
	err := f.db.WithContext(ctx).Where("kind = ? AND owner_id = ? AND currency = ?", kind, owner, Currency).Take(&a).Error
	if err == nil {
		return &a, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("fees: read %s account of %d: %w", kind, owner, err)
	}
	if !create {
		return nil, nil
	}
	a = Account{Kind: kind, OwnerID: owner, Currency: Currency}
	if err := f.db.WithContext(ctx).Create(&a).Error; err != nil {
		if sqldb.IsDuplicate(err) {
			return f.account(ctx, kind, owner, false)
		}
		return nil, fmt.Errorf("fees: open %s account of %d: %w", kind, owner, err)
	}
	return &a, nil
}

// move is one requested transfer.
type move struct {
	user     int64 // who asks; idempotency keys are scoped to them
	key      string
	kind     string
	from, to *Account
	amount   int64
	room     int64
	member   int64
	period   string
	memo     string
	receipt  string // a spend's receipt upload id ("" for none)
	test     bool   // the money came from a test provider
	// guard, when set, checks a rule that depends on the ledger (a refund's
	// cap) after the rows are locked, so concurrent moves cannot both pass
	// it; it returns the refusal's code, or "" to go ahead.
	guard func(tx *gorm.DB) (string, error)
	// announce, when set, words the room's fee event from the balances
	// after the move; it is written to the outbox in the same transaction.
	announce func(fromAfter, toAfter int64) (body string, fee map[string]any)
}

func (m *move) hash() string {
	h := sha256.Sum256([]byte(strings.Join([]string{m.kind, strconv.FormatInt(m.amount, 10),
		strconv.FormatInt(m.from.ID, 10), strconv.FormatInt(m.to.ID, 10), strconv.FormatInt(m.room, 10),
		strconv.FormatInt(m.member, 10), m.period, m.memo, m.receipt}, "\x00")))
	return hex.EncodeToString(h[:])
}

// maxAttempts bounds retries of a transaction MySQL chose as a deadlock
// victim (1213) or that lost a race for the same idempotency key.
const maxAttempts = 8

// transfer moves money once per idempotency key: both balance updates, both
// ledger entries, the transfer row and the outbox event commit together.
// A refused attempt is stored too, so the same key keeps its answer.
// Retries wait 5 ms, doubling to 40 ms, with jitter so two transactions
// that deadlocked do not meet again.
func (f *Fees) transfer(ctx context.Context, m *move) (*Transfer, error) {
	hash := m.hash()
	start := time.Now()
	var t *Transfer
	var err error
	_, _ = backoff.Retry(ctx, func() (struct{}, error) {
		t, err = f.transferOnce(ctx, m, hash)
		if sqldb.IsDeadlock(err) || sqldb.IsDuplicate(err) {
			return struct{}{}, err
		}
		return struct{}{}, nil // done, or refused for good: t and err are the answer
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 40 * time.Millisecond}),
		backoff.WithMaxTries(maxAttempts), backoff.WithMaxElapsedTime(0))
	f.metrics.observe(m.kind, t, err, time.Since(start).Seconds())
	return t, err
}

func (f *Fees) transferOnce(ctx context.Context, m *move, hash string) (*Transfer, error) {
	var out *Transfer
	var refusal error
	err := f.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var prev Transfer
		err := tx.Where("user_id = ? AND idem_key = ?", m.user, m.key).Take(&prev).Error
		switch {
		case err == nil:
			if prev.RequestHash != hash {
				refusal = errIdemConflict
			} else if prev.Refused != "" {
				refusal = refusals[prev.Refused]
			}
			prev.Replayed = true
			out = &prev
			return nil
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return err
		}
		// Lock both rows in id order so concurrent transfers never wait on
		// each other in a cycle. SQLite ignores FOR UPDATE; its writers are
		// serialized and the conditional debit below still guards.
		ids := []int64{min(m.from.ID, m.to.ID), max(m.from.ID, m.to.ID)}
		var locked []Account
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id IN ?", ids).Order("id").Find(&locked).Error; err != nil {
			return err
		}
		t := &Transfer{UserID: m.user, IdemKey: m.key, RequestHash: hash, Kind: m.kind, FromAccount: m.from.ID, ToAccount: m.to.ID,
			Amount: m.amount, RoomID: m.room, MemberID: m.member, Period: m.period, Memo: m.memo, ReceiptID: m.receipt, Test: m.test}
		code := ""
		for _, a := range locked {
			if a.Closed {
				code = "fund_closed"
			}
		}
		if m.guard != nil && code == "" {
			if code, err = m.guard(tx); err != nil {
				return err
			}
		}
		if code != "" {
			t.Refused = code
			refusal = refusals[code]
			out = t
			return tx.Create(t).Error
		}
		debit := tx.Model(&Account{}).Where("id = ?", m.from.ID)
		if m.from.Kind != KindExternal {
			debit = debit.Where("balance >= ?", m.amount)
		}
		res := debit.Update("balance", gorm.Expr("balance - ?", m.amount))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			t.Refused = "insufficient_funds"
			refusal = errInsufficient
			out = t
			return tx.Create(t).Error
		}
		if err := tx.Model(&Account{}).Where("id = ?", m.to.ID).Update("balance", gorm.Expr("balance + ?", m.amount)).Error; err != nil {
			return err
		}
		var after []Account
		if err := tx.Where("id IN ?", ids).Find(&after).Error; err != nil {
			return err
		}
		bal := map[int64]int64{}
		for _, a := range after {
			bal[a.ID] = a.Balance
		}
		if err := tx.Create(t).Error; err != nil {
			return err
		}
		entries := []Entry{
			{TransferID: t.ID, AccountID: m.from.ID, Amount: -m.amount, BalanceAfter: bal[m.from.ID]},
			{TransferID: t.ID, AccountID: m.to.ID, Amount: m.amount, BalanceAfter: bal[m.to.ID]},
		}
		if err := tx.Create(&entries).Error; err != nil {
			return err
		}
		if m.announce != nil {
			body, fee := m.announce(bal[m.from.ID], bal[m.to.ID])
			fee["transfer_id"] = t.ID
			raw, err := json.Marshal(fee)
			if err != nil {
				return err
			}
			if err := tx.Create(&Outbox{RoomID: m.room, Body: body, Fee: string(raw)}).Error; err != nil {
				return err
			}
		}
		out = t
		f.reached(StopLedgerUncommitted)
		return nil
	})
	if err == nil {
		f.reached(StopLedgerCommitted)
	}
	if err != nil {
		return nil, fmt.Errorf("fees: %s of %d for user %d: %w", m.kind, m.amount, m.user, err)
	}
	if m.announce != nil && refusal == nil {
		f.nudge()
	}
	if refusal != nil {
		return out, refusal
	}
	return out, nil
}

// nudge wakes the outbox relay after a fee event was committed.
func (f *Fees) nudge() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}
