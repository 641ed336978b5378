package fees

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"moim/api"
	"moim/payments"
	"moim/sqldb"
)

// Payment kinds and statuses.
const (
	PaymentTopUp      = "topup"
	PaymentWithdrawal = "withdrawal"

	PaymentPending   = "pending"
	PaymentConfirmed = "confirmed"
	PaymentFailed    = "failed"
	// PaymentCancelled is a top-up its owner ended at checkout (cancelled
	// or failed in the provider's window): nothing was charged.
	PaymentCancelled = "cancelled"
)

// Payment is one top-up or withdrawal through the payment provider. Money
// enters a wallet only when its top-up is confirmed by the provider, and
// leaves only when its withdrawal is paid out; meanwhile a withdrawal's
// amount is held.
type Payment struct {
	ID      int64  `gorm:"primaryKey"`
	UserID  int64  `gorm:"not null;uniqueIndex:payment_idem"`
	IdemKey string `gorm:"size:64;not null;uniqueIndex:payment_idem"`
	Kind    string `gorm:"size:10;not null"`
	// Provider names who handles it: sandbox or toss.
	Provider string `gorm:"size:16;not null"`
	OrderID  string `gorm:"size:64;not null;uniqueIndex"`
	Amount   int64  `gorm:"not null"`
	Status   string `gorm:"size:10;not null"`
	// Failure is why a failed payment failed, in the provider's words.
	Failure    string `gorm:"size:300;not null"`
	PaymentKey string `gorm:"size:200;not null"`
	// Test marks the sandbox's (or a provider's test mode's) money.
	Test      bool `gorm:"not null"`
	CreatedAt time.Time
	UpdatedAt time.Time
	// Checkout is what the browser needs to pay a pending top-up.
	Checkout *payments.Checkout `gorm:"-"`
	Replayed bool               `gorm:"-"`
}

var errNoPayments = api.Errorf(503, "payments_not_configured",
	"no payment provider is configured on this server (MOIM_PAYMENTS); money cannot be added or taken out")

var errNoPayouts = api.Errorf(501, "payouts_not_supported",
	"this server's payment provider cannot pay money out to a bank account; nothing was taken from the wallet")

// payKeyPrefix starts the idempotency keys of the ledger transfers a
// payment makes; users' keys may not start with it.
const payKeyPrefix = "pay:"

func newOrderID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "moim-" + hex.EncodeToString(b)
}

// startPayment creates the user's payment for key, or returns the one the
// key already made (Replayed); a different request under the key is 409.
func (f *Fees) startPayment(ctx context.Context, user int64, kind string, amount int64, key string) (*Payment, error) {
	if f.provider == nil {
		return nil, errNoPayments
	}
	if err := firstErr(f.checkAmount(amount), checkKey(key)); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		var p Payment
		err := f.db.WithContext(ctx).Where("user_id = ? AND idem_key = ?", user, key).Take(&p).Error
		if err == nil {
			if p.Kind != kind || p.Amount != amount {
				return nil, errIdemConflict
			}
			p.Replayed = true
			return &p, nil
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("fees: read payment %q of %d: %w", key, user, err)
		}
		p = Payment{UserID: user, IdemKey: key, Kind: kind, Provider: f.provider.Name(), OrderID: newOrderID(),
			Amount: amount, Status: PaymentPending, Test: f.provider.Test()}
		err = f.db.WithContext(ctx).Create(&p).Error
		if err == nil {
			return &p, nil
		}
		if !sqldb.IsDuplicate(err) || attempt > 0 {
			return nil, fmt.Errorf("fees: start %s of %d for %d: %w", kind, amount, user, err)
		}
		// A concurrent request with the same key won; answer with its payment.
	}
}

// TopUp starts adding money to the user's wallet through the provider.
// The sandbox confirms at once; a real provider answers pending with what
// the browser needs for checkout, and ConfirmTopUp credits afterwards.
func (f *Fees) TopUp(ctx context.Context, user, amount int64, key string) (*Payment, error) {
	p, err := f.startPayment(ctx, user, PaymentTopUp, amount, key)
	if err != nil || p.Status != PaymentPending {
		return p, err
	}
	c, err := f.provider.Checkout(ctx, payments.Order{ID: p.OrderID, UserID: user, Amount: amount, Name: "Moim 지갑 충전"})
	if err != nil {
		return nil, fmt.Errorf("fees: checkout of top-up %d: %w", p.ID, err)
	}
	if c == nil {
		f.reached(StopTopUpConfirmed)
		return p, f.credit(ctx, p, "")
	}
	p.Checkout = c
	return p, nil
}

// usersTopUp is user's top-up under orderID: 404 when it is another
// user's, not a top-up or unknown, 503 with no provider configured.
func (f *Fees) usersTopUp(ctx context.Context, user int64, orderID string) (*Payment, error) {
	if f.provider == nil {
		return nil, errNoPayments
	}
	p, err := f.paymentByOrder(ctx, orderID)
	if err != nil {
		return nil, err
	}
	if p == nil || p.UserID != user || p.Kind != PaymentTopUp {
		return nil, api.NotFound("top-up")
	}
	return p, nil
}

// ConfirmTopUp confirms a top-up the browser paid at the provider: the
// amount must be the one the top-up was started with, and the provider
// must approve it with the secret key; then the wallet is credited once.
func (f *Fees) ConfirmTopUp(ctx context.Context, user int64, orderID, paymentKey string, amount int64) (*Payment, error) {
	p, err := f.usersTopUp(ctx, user, orderID)
	if err != nil {
		return nil, err
	}
	if p.Status != PaymentPending {
		p.Replayed = true
		return p, nil
	}
	if amount != p.Amount {
		return nil, api.Errorf(400, "amount_mismatch", "amount differs from the top-up's; nothing was charged to the wallet")
	}
	if paymentKey == "" || len(paymentKey) > 200 {
		return nil, api.Validation("payment_key must be the provider's paymentKey")
	}
	got, err := f.provider.Confirm(ctx, paymentKey, orderID, amount)
	var ref *payments.Refusal
	switch {
	case errors.As(err, &ref):
		return p, f.failPayment(ctx, p, ref.Code+": "+ref.Message)
	case err != nil:
		return nil, api.Errorf(502, "payment_provider_unavailable", "the payment provider did not answer; try confirming again")
	case !got.Done():
		return nil, api.Conflict("payment_not_done", "the provider has not completed this payment ("+got.Status+")")
	}
	f.reached(StopTopUpConfirmed)
	return p, f.credit(ctx, p, paymentKey)
}

// CancelTopUp ends the user's pending top-up whose checkout the provider's
// window reported cancelled or failed (Toss's failUrl, or its SDK's
// promise rejecting), so it does not wait an hour for Reconcile: status
// cancelled, nothing charged. The client's word alone is not enough while
// money might have moved: the provider is asked first, and a payment it
// holds as done is credited and answered 409 payment_confirmed instead.
// A top-up that already ended answers as it is (a repeat is harmless);
// another user's or an unknown order is 404. why is the provider's
// reason as the client reported it, kept for the record.
func (f *Fees) CancelTopUp(ctx context.Context, user int64, orderID, why string) (*Payment, error) {
	p, err := f.usersTopUp(ctx, user, orderID)
	if err != nil {
		return nil, err
	}
	if p.Status == PaymentPending {
		if err := f.cancelPending(ctx, p, why); err != nil {
			return nil, err
		}
	}
	if p.Status == PaymentConfirmed {
		return nil, errTopUpConfirmed
	}
	return p, nil
}

var errTopUpConfirmed = api.Conflict("payment_confirmed", "this top-up was paid and credited to the wallet; it cannot be cancelled")

// cancelPending asks the provider about a pending top-up before marking
// it cancelled: one it holds as paid is credited instead.
func (f *Fees) cancelPending(ctx context.Context, p *Payment, why string) error {
	got, err := f.provider.LookupOrder(ctx, p.OrderID)
	var ref *payments.Refusal
	switch {
	case errors.Is(err, payments.ErrUnsupported):
		// The provider confirms at checkout (the sandbox): a pending one
		// was cut off between its confirmation and the credit.
		return f.credit(ctx, p, "")
	case errors.As(err, &ref):
		// No payment at the provider for this order: nothing to take back.
	case err != nil:
		return api.Errorf(502, "payment_provider_unavailable", fmt.Sprintf("the payment provider did not answer; the top-up stays pending: %v", err))
	case got.Done() && got.Amount == p.Amount:
		return f.credit(ctx, p, got.PaymentKey)
	}
	if why == "" {
		why = "cancelled at checkout"
	}
	if r := []rune(why); len(r) > 300 {
		why = string(r[:300])
	}
	err = f.db.WithContext(ctx).Model(&Payment{}).Where("id = ? AND status = ?", p.ID, PaymentPending).
		Updates(map[string]any{"status": PaymentCancelled, "failure": why}).Error
	if err != nil {
		return fmt.Errorf("fees: cancel top-up %d: %w", p.ID, err)
	}
	// Read it back: a confirm racing this one may have settled it first.
	var now Payment
	if err := f.db.WithContext(ctx).Where("id = ?", p.ID).Take(&now).Error; err != nil {
		return fmt.Errorf("fees: read cancelled top-up %d: %w", p.ID, err)
	}
	*p = now
	return nil
}

// PendingTopUps lists the user's top-ups still waiting for checkout, newest
// first (at most 10), for the wallet to show.
func (f *Fees) PendingTopUps(ctx context.Context, user int64) ([]PendingTopUp, error) {
	var ps []Payment
	if err := f.db.WithContext(ctx).Where("user_id = ? AND kind = ? AND status = ?", user, PaymentTopUp, PaymentPending).
		Order("id DESC").Limit(10).Find(&ps).Error; err != nil {
		return nil, fmt.Errorf("fees: pending top-ups of %d: %w", user, err)
	}
	out := make([]PendingTopUp, len(ps))
	for i, p := range ps {
		out[i] = PendingTopUp{ID: p.ID, OrderID: p.OrderID, Amount: p.Amount, CreatedAt: p.CreatedAt}
	}
	return out, nil
}

// PendingTopUp is a top-up started and not yet paid or ended.
type PendingTopUp struct {
	ID        int64     `json:"id"`
	OrderID   string    `json:"order_id"`
	Amount    int64     `json:"amount"`
	CreatedAt time.Time `json:"created_at"`
}

// Notified handles a provider's notification that a payment changed. The
// notification is not trusted: the payment is read back from the provider
// with the secret key, and credited only if it is done with the order's
// amount. It covers a browser that paid but never came back to confirm.
func (f *Fees) Notified(ctx context.Context, paymentKey string) error {
	if f.provider == nil {
		return errNoPayments
	}
	got, err := f.provider.Lookup(ctx, paymentKey)
	var ref *payments.Refusal
	switch {
	case errors.Is(err, payments.ErrUnsupported):
		return api.NotFound("payment")
	case errors.As(err, &ref):
		return api.NotFound("payment")
	case err != nil:
		return api.Errorf(502, "payment_provider_unavailable", "the payment provider did not answer")
	}
	p, err := f.paymentByOrder(ctx, got.OrderID)
	if err != nil {
		return err
	}
	if p == nil || p.Kind != PaymentTopUp || p.Status != PaymentPending || !got.Done() || got.Amount != p.Amount {
		// Not ours, already settled, or not paid: nothing to credit.
		return nil
	}
	return f.credit(ctx, p, got.PaymentKey)
}

func (f *Fees) paymentByOrder(ctx context.Context, orderID string) (*Payment, error) {
	var p Payment
	err := f.db.WithContext(ctx).Where("order_id = ?", orderID).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fees: payment of order %q: %w", orderID, err)
	}
	return &p, nil
}

// credit moves a confirmed top-up's money from the external account into
// the wallet under a key naming the order, so however often it is
// repeated (a retried confirm, a notification racing the browser) the
// wallet is credited once.
func (f *Fees) credit(ctx context.Context, p *Payment, paymentKey string) error {
	ext, err := f.account(ctx, KindExternal, 0, true)
	if err != nil {
		return err
	}
	wallet, err := f.account(ctx, KindWallet, p.UserID, true)
	if err != nil {
		return err
	}
	if _, err := f.transfer(ctx, &move{user: p.UserID, key: payKeyPrefix + p.OrderID, kind: TransferTopUp, from: ext, to: wallet,
		amount: p.Amount, member: p.UserID, memo: p.Provider, test: p.Test}); err != nil {
		return err
	}
	f.reached(StopTopUpCredited)
	return f.settlePayment(ctx, p, PaymentConfirmed, paymentKey, "")
}

func (f *Fees) settlePayment(ctx context.Context, p *Payment, status, paymentKey, failure string) error {
	from := []string{PaymentPending}
	if status == PaymentConfirmed {
		// The money moved: that is the truth even if a cancel raced the
		// confirm and marked the top-up first.
		from = append(from, PaymentCancelled)
	}
	err := f.db.WithContext(ctx).Model(&Payment{}).Where("id = ? AND status IN ?", p.ID, from).
		Updates(map[string]any{"status": status, "payment_key": paymentKey, "failure": failure}).Error
	if err != nil {
		return fmt.Errorf("fees: mark payment %d %s: %w", p.ID, status, err)
	}
	p.Status, p.PaymentKey, p.Failure = status, paymentKey, failure
	return nil
}

func (f *Fees) failPayment(ctx context.Context, p *Payment, why string) error {
	// The provider's words may be Korean: cut by characters, never inside one.
	if r := []rune(why); len(r) > 300 {
		why = string(r[:300])
	}
	return f.settlePayment(ctx, p, PaymentFailed, "", why)
}

// Withdraw takes money out of the user's wallet to their bank account
// through the provider. The amount is held first (it leaves the spendable
// balance); the payout then settles it, or a failed payout releases it.
func (f *Fees) Withdraw(ctx context.Context, user, amount int64, key string) (*Payment, error) {
	if f.provider != nil && !f.provider.PaysOut() {
		return nil, errNoPayouts
	}
	p, err := f.startPayment(ctx, user, PaymentWithdrawal, amount, key)
	if err != nil {
		return nil, err
	}
	if p.Replayed && p.Failure == "insufficient_funds" {
		return p, errInsufficient
	}
	if p.Status != PaymentPending {
		return p, nil
	}
	f.reached(StopWithdrawalStarted)
	return p, f.payOut(ctx, p)
}

// payOut holds a pending withdrawal's amount, asks the provider to pay it
// out, then settles or releases the hold. Every step is keyed by the
// order, so running it again after a crash (Reconcile) repeats nothing:
// the hold is not taken twice, and the provider is asked again for the
// same order.
func (f *Fees) payOut(ctx context.Context, p *Payment) error {
	wallet, err := f.account(ctx, KindWallet, p.UserID, true)
	if err != nil {
		return err
	}
	hold, err := f.account(ctx, KindHold, p.UserID, true)
	if err != nil {
		return err
	}
	if _, err := f.transfer(ctx, &move{user: p.UserID, key: payKeyPrefix + p.OrderID + ":hold", kind: TransferHold,
		from: wallet, to: hold, amount: p.Amount, member: p.UserID, memo: p.Provider, test: p.Test}); err != nil {
		if errors.Is(err, errInsufficient) {
			if ferr := f.failPayment(ctx, p, "insufficient_funds"); ferr != nil {
				return ferr
			}
		}
		return err
	}
	f.reached(StopWithdrawalHeld)
	done, err := f.provider.Payout(ctx, payments.Order{ID: p.OrderID, UserID: p.UserID, Amount: p.Amount, Name: "Moim 지갑 출금"})
	switch {
	case err != nil:
		why := err.Error()
		var ref *payments.Refusal
		if errors.As(err, &ref) {
			why = ref.Code + ": " + ref.Message
		}
		return f.release(ctx, p, wallet, hold, why)
	case done:
		f.reached(StopWithdrawalPaidOut)
		ext, err := f.account(ctx, KindExternal, 0, true)
		if err != nil {
			return err
		}
		if _, err := f.transfer(ctx, &move{user: p.UserID, key: payKeyPrefix + p.OrderID + ":out", kind: TransferWithdraw,
			from: hold, to: ext, amount: p.Amount, member: p.UserID, memo: p.Provider, test: p.Test,
			guard: f.notSettled(p, ":release")}); err != nil {
			return err
		}
		f.reached(StopWithdrawalSettled)
		return f.settlePayment(ctx, p, PaymentConfirmed, "", "")
	}
	return nil
}

// notSettled guards a withdrawal's paying out against its release and the
// other way round (other is the key suffix of the move that must not have
// happened): each runs under the hold's row lock, so whichever comes
// second is refused, even when two nodes resume the same withdrawal.
func (f *Fees) notSettled(p *Payment, other string) func(tx *gorm.DB) (string, error) {
	return func(tx *gorm.DB) (string, error) {
		var n int64
		err := tx.Model(&Transfer{}).Where("user_id = ? AND idem_key = ? AND refused = ''", p.UserID, payKeyPrefix+p.OrderID+other).Count(&n).Error
		if err != nil || n == 0 {
			return "", err
		}
		return "payment_settled", nil
	}
}

// release returns a failed withdrawal's held money to the wallet.
func (f *Fees) release(ctx context.Context, p *Payment, wallet, hold *Account, why string) error {
	if _, err := f.transfer(ctx, &move{user: p.UserID, key: payKeyPrefix + p.OrderID + ":release", kind: TransferRelease,
		from: hold, to: wallet, amount: p.Amount, member: p.UserID, memo: p.Provider, test: p.Test,
		guard: f.notSettled(p, ":out")}); err != nil {
		return err
	}
	f.reached(StopWithdrawalSettled)
	return f.failPayment(ctx, p, why)
}

// paymentView is a payment as the API returns it.
type paymentView struct {
	ID        int64              `json:"id"`
	Kind      string             `json:"kind"`
	Status    string             `json:"status"`
	Provider  string             `json:"provider"`
	Amount    int64              `json:"amount"`
	Currency  string             `json:"currency"`
	Test      bool               `json:"test"`
	OrderID   string             `json:"order_id"`
	Failure   string             `json:"failure,omitempty"`
	Checkout  *payments.Checkout `json:"checkout,omitempty"`
	CreatedAt time.Time          `json:"created_at"`
}

func viewPayment(p *Payment) paymentView {
	return paymentView{ID: p.ID, Kind: p.Kind, Status: p.Status, Provider: p.Provider, Amount: p.Amount, Currency: Currency,
		Test: p.Test, OrderID: p.OrderID, Failure: p.Failure, Checkout: p.Checkout, CreatedAt: p.CreatedAt}
}
