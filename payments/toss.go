package payments

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// TossAPI is Toss Payments' API origin.
const TossAPI = "https://api.tosspayments.com"

// TossSDK is Toss Payments' JS SDK (v2), which the browser loads to open
// the payment window: TossPayments(clientKey).payment({customerKey})
// .requestPayment({method, amount: {currency, value}, orderId, orderName,
// successUrl, failUrl}) sends the browser to Toss and back to successUrl
// with paymentKey, orderId and amount, or to failUrl with code, message
// and orderId.
const TossSDK = "https://js.tosspayments.com/v2/standard"

// Toss is Toss Payments (토스페이먼츠) through its documented payment
// widget flow: the browser pays with the client key, Toss redirects back
// with paymentKey, orderId and amount, and the server confirms them with
// the secret key (POST /v1/payments/confirm); only a confirmed payment
// credits a wallet.
type Toss struct {
	secretKey string
	clientKey string
	base      string
	sdk       string
	http      *http.Client
}

// NewToss returns the Toss client; base is TossAPI except in tests, which
// point it at a local stand-in. Checkouts name TossSDK until UseSDK.
func NewToss(secretKey, clientKey, base string) *Toss {
	return &Toss{secretKey: secretKey, clientKey: clientKey, base: base, sdk: TossSDK, http: &http.Client{Timeout: 30 * time.Second}}
}

// UseSDK names the checkout script browsers load instead of TossSDK (a
// browser test's local stand-in).
func (t *Toss) UseSDK(url string) *Toss {
	t.sdk = url
	return t
}

// Name implements Provider.
func (t *Toss) Name() string { return "toss" }

// Test implements Provider: Toss's test keys start with "test_".
func (t *Toss) Test() bool { return len(t.secretKey) > 5 && t.secretKey[:5] == "test_" }

// Checkout implements Provider: the widget needs the client key, the
// order and a key naming the customer.
func (t *Toss) Checkout(_ context.Context, o Order) (*Checkout, error) {
	return &Checkout{ClientKey: t.clientKey, CustomerKey: "moim-user-" + strconv.FormatInt(o.UserID, 10),
		OrderID: o.ID, OrderName: o.Name, Amount: o.Amount, SDKURL: t.sdk}, nil
}

// tossPayment is the part of Toss's Payment object Moim reads.
type tossPayment struct {
	PaymentKey  string `json:"paymentKey"`
	OrderID     string `json:"orderId"`
	Status      string `json:"status"`
	TotalAmount int64  `json:"totalAmount"`
}

// Confirm implements Provider with POST /v1/payments/confirm. The order id
// doubles as Toss's Idempotency-Key, so a retried confirm is answered,
// not charged, again.
func (t *Toss) Confirm(ctx context.Context, paymentKey, orderID string, amount int64) (*Payment, error) {
	body, err := json.Marshal(map[string]any{"paymentKey": paymentKey, "orderId": orderID, "amount": amount})
	if err != nil {
		return nil, err
	}
	p, err := t.do(ctx, http.MethodPost, "/v1/payments/confirm", body, orderID)
	if err != nil {
		return nil, err
	}
	if p.OrderID != orderID || p.Amount != amount {
		return nil, &Refusal{Code: "MISMATCH", Message: fmt.Sprintf("Toss confirmed order %q for %d, asked %q for %d", p.OrderID, p.Amount, orderID, amount)}
	}
	return p, nil
}

// Lookup implements Provider with GET /v1/payments/{paymentKey}.
func (t *Toss) Lookup(ctx context.Context, paymentKey string) (*Payment, error) {
	return t.do(ctx, http.MethodGet, "/v1/payments/"+url.PathEscape(paymentKey), nil, "")
}

// LookupOrder implements Provider with GET /v1/payments/orders/{orderId}.
func (t *Toss) LookupOrder(ctx context.Context, orderID string) (*Payment, error) {
	return t.do(ctx, http.MethodGet, "/v1/payments/orders/"+url.PathEscape(orderID), nil, "")
}

// PaysOut implements Provider: no. Toss pays money out only through its
// payout service (지급대행), a separate contract that pays a marketplace's
// registered sellers (bank account and KYC checked by Toss, requests
// JWE-encrypted with a security key) from the merchant's settlement
// balance; Moim registers no member as a seller and holds no bank
// accounts, so a Toss withdrawal is refused rather than pretended.
func (t *Toss) PaysOut() bool { return false }

// Payout implements Provider; see PaysOut.
func (t *Toss) Payout(context.Context, Order) (bool, error) { return false, ErrUnsupported }

func (t *Toss) do(ctx context.Context, method, path string, body []byte, idem string) (*Payment, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("toss: %w", err)
	}
	// Basic auth with the secret key as user and an empty password.
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(t.secretKey+":")))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("toss %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("toss %s: %w", path, err)
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		var e struct{ Code, Message string }
		if json.Unmarshal(raw, &e) != nil || e.Code == "" {
			e.Code = strconv.Itoa(resp.StatusCode)
		}
		return nil, &Refusal{Code: e.Code, Message: e.Message}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("toss %s: status %d", path, resp.StatusCode)
	}
	var p tossPayment
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("toss %s: read payment: %w", path, err)
	}
	return &Payment{PaymentKey: p.PaymentKey, OrderID: p.OrderID, Status: p.Status, Amount: p.TotalAmount}, nil
}
