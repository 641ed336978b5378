package fees

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"moim/payments"
)

const (
	// StaleAfter is how long a payment stays pending before Reconcile takes
	// it as cut off: longer than any request works on one (the provider
	// client gives up after 30 s), so a live request is never raced.
	StaleAfter = 2 * time.Minute
	// unpaidExpiry is how long a top-up the provider has no payment for may
	// still be paid at checkout before Reconcile fails it as abandoned.
	unpaidExpiry = time.Hour
)

// Reconcile finishes payments a crash (or a lost connection) left pending
// for longer than olderThan, asking the provider what became of each: a
// top-up the provider holds as paid is credited, one it has no payment
// for after unpaidExpiry, or one it cancelled, fails; a withdrawal is
// resumed where it stopped (hold, payout, settle or release). Each step is
// keyed by the order, so a payment is completed or released exactly once
// however many nodes reconcile at once. It reports how many it settled.
func (f *Fees) Reconcile(ctx context.Context, olderThan time.Duration) (int, error) {
	if f.provider == nil {
		return 0, nil
	}
	settled := 0
	var errs []error
	// Page by id, so payments still waiting at the provider (a top-up at
	// checkout) never keep later ones from their turn.
	for after := int64(0); ; {
		var pending []Payment
		if err := f.db.WithContext(ctx).Where("status = ? AND updated_at < ? AND id > ?", PaymentPending, f.now().UTC().Add(-olderThan), after).
			Order("id").Limit(100).Find(&pending).Error; err != nil {
			return settled, errors.Join(append(errs, fmt.Errorf("fees: read pending payments: %w", err))...)
		}
		for i := range pending {
			p := &pending[i]
			after = p.ID
			if p.Provider != f.provider.Name() {
				continue // another provider's; only it can say what happened
			}
			var err error
			if p.Kind == PaymentTopUp {
				err = f.resumeTopUp(ctx, p)
			} else {
				err = f.payOut(ctx, p)
				if errors.Is(err, errSettled) || errors.Is(err, errInsufficient) {
					err = nil // another node settled it; or it failed, recorded
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("payment %d (%s): %w", p.ID, p.OrderID, err))
				continue
			}
			if p.Status != PaymentPending {
				settled++
			}
		}
		if len(pending) < 100 || ctx.Err() != nil {
			break
		}
	}
	return settled, errors.Join(errs...)
}

// resumeTopUp credits a pending top-up the provider says is paid, or
// fails one it will never be paid for.
func (f *Fees) resumeTopUp(ctx context.Context, p *Payment) error {
	got, err := f.provider.LookupOrder(ctx, p.OrderID)
	var ref *payments.Refusal
	switch {
	case errors.Is(err, payments.ErrUnsupported):
		// The provider confirms at checkout (the sandbox): the crash came
		// between its confirmation and the credit.
		return f.credit(ctx, p, "")
	case errors.As(err, &ref):
		if f.now().Sub(p.CreatedAt) < unpaidExpiry {
			return nil // the user may still be at checkout
		}
		return f.failPayment(ctx, p, "expired: never paid at the provider ("+ref.Code+")")
	case err != nil:
		return err
	case got.Done() && got.Amount == p.Amount:
		return f.credit(ctx, p, got.PaymentKey)
	case got.Done():
		return f.failPayment(ctx, p, fmt.Sprintf("amount_mismatch: the provider holds %d for this order", got.Amount))
	case got.Status == "CANCELED" || got.Status == "ABORTED" || got.Status == "EXPIRED":
		return f.failPayment(ctx, p, "provider: "+got.Status)
	}
	return nil // still in progress at the provider
}

// Recover runs Reconcile at start and then every interval until ctx ends.
func (f *Fees) Recover(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := f.Reconcile(ctx, StaleAfter)
		if err != nil && ctx.Err() == nil {
			log.Warn("payments: reconcile; will retry", "err", err)
		}
		if n > 0 {
			log.Info("payments: settled payments cut off earlier", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
