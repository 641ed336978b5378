// Package payments is how money enters and leaves Moim: a provider (a
// Korean payment gateway, or the sandbox) confirms a top-up before the
// ledger credits a wallet, and pays out a withdrawal the ledger holds.
package payments

import (
	"context"
	"errors"
	"fmt"
)

// Provider is a payment gateway as the ledger needs it.
type Provider interface {
	// Name is the provider's name in API answers and the ledger.
	Name() string
	// Test reports whether its money is test money, to be labelled so
	// wherever it is shown.
	Test() bool
	// Checkout starts a top-up. A nil Checkout means the provider
	// confirmed it at once (the sandbox); otherwise the client completes
	// the provider's checkout with it and the server confirms afterwards.
	Checkout(ctx context.Context, o Order) (*Checkout, error)
	// Confirm asks the provider to approve a payment the client completed
	// and checks the approved order and amount are the ones asked for.
	Confirm(ctx context.Context, paymentKey, orderID string, amount int64) (*Payment, error)
	// Lookup reads a payment as the provider has it, so a notification
	// (webhook) is never trusted on its own word.
	Lookup(ctx context.Context, paymentKey string) (*Payment, error)
	// LookupOrder reads the payment of an order as the provider has it,
	// for recovering a top-up whose confirm was cut off; a Refusal when
	// the provider has no payment for it, ErrUnsupported when the
	// provider confirms at checkout and keeps no record.
	LookupOrder(ctx context.Context, orderID string) (*Payment, error)
	// PaysOut reports whether the provider can pay a withdrawal out at
	// all; without it withdrawals are refused before anything is held.
	PaysOut() bool
	// Payout sends a withdrawal to the user's account; done reports it
	// settled, otherwise it stays pending. ErrUnsupported when the
	// provider cannot pay out. It must be idempotent by order ID: a
	// withdrawal cut off by a crash is resumed by asking again.
	Payout(ctx context.Context, o Order) (done bool, err error)
}

// Order is one top-up or withdrawal as Moim sends it to a provider.
type Order struct {
	ID     string // unique across the deployment; the provider's orderId
	UserID int64
	Amount int64
	Name   string // shown on the checkout page
}

// Checkout is what the browser needs to open the provider's payment
// window for an order.
type Checkout struct {
	ClientKey   string `json:"client_key"`
	CustomerKey string `json:"customer_key"`
	OrderID     string `json:"order_id"`
	OrderName   string `json:"order_name"`
	Amount      int64  `json:"amount"`
	// SDKURL is the provider's checkout script the browser loads.
	SDKURL string `json:"sdk_url"`
}

// Payment is a payment as the provider reports it.
type Payment struct {
	PaymentKey string
	OrderID    string
	Status     string // the provider's word; Done tells whether it is paid
	Amount     int64
}

// Done reports whether the provider holds the money.
func (p *Payment) Done() bool { return p.Status == "DONE" }

// Refusal is the provider declining a payment (card declined, amount
// mismatch): final, unlike a network failure, which may be retried.
type Refusal struct {
	Code    string
	Message string
}

func (r *Refusal) Error() string { return fmt.Sprintf("payment refused: %s: %s", r.Code, r.Message) }

// ErrUnsupported is a provider lacking an operation.
var ErrUnsupported = errors.New("payments: not supported by this provider")

// Sandbox confirms every top-up and withdrawal at once with test money:
// for development, demos and load tests, never for real clubs.
type Sandbox struct{}

// Name implements Provider.
func (Sandbox) Name() string { return "sandbox" }

// Test implements Provider: sandbox money is not real.
func (Sandbox) Test() bool { return true }

// Checkout implements Provider: there is nothing to check out.
func (Sandbox) Checkout(context.Context, Order) (*Checkout, error) { return nil, nil }

// Confirm implements Provider; the sandbox confirms at checkout, so a
// client never has anything to confirm.
func (Sandbox) Confirm(context.Context, string, string, int64) (*Payment, error) {
	return nil, ErrUnsupported
}

// Lookup implements Provider; the sandbox sends no notifications.
func (Sandbox) Lookup(context.Context, string) (*Payment, error) { return nil, ErrUnsupported }

// LookupOrder implements Provider; the sandbox keeps no record.
func (Sandbox) LookupOrder(context.Context, string) (*Payment, error) { return nil, ErrUnsupported }

// PaysOut implements Provider: the sandbox pays out test money.
func (Sandbox) PaysOut() bool { return true }

// Payout implements Provider: settled at once.
func (Sandbox) Payout(context.Context, Order) (bool, error) { return true, nil }
