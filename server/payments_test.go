package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"moim/fees"
)

type paymentView struct {
	ID       int64  `json:"id"`
	Kind     string `json:"kind"`
	Status   string `json:"status"`
	Provider string `json:"provider"`
	Amount   int64  `json:"amount"`
	Test     bool   `json:"test"`
	OrderID  string `json:"order_id"`
	Failure  string `json:"failure"`
	Checkout *struct {
		ClientKey   string `json:"client_key"`
		CustomerKey string `json:"customer_key"`
		OrderID     string `json:"order_id"`
		Amount      int64  `json:"amount"`
	} `json:"checkout"`
}

// TestSandboxTopUpsAndWithdrawals: the sandbox confirms at once and marks
// its money as test money in the API, the ledger and the CSV; withdrawals
// hold then pay out; the old deposit no longer credits anything.
func TestSandboxTopUpsAndWithdrawals(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	u := n.user(t, "Payer")
	var p, again paymentView
	u.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 30000, "idempotency_key": "t1"}, &p)
	if p.Status != "confirmed" || p.Provider != "sandbox" || !p.Test || p.Amount != 30000 || p.Checkout != nil {
		t.Fatalf("sandbox top-up %+v", p)
	}
	u.must(200, "POST", "/api/wallet/topups", map[string]any{"amount": 30000, "idempotency_key": "t1"}, &again)
	u.fails(409, "idempotency_conflict", "POST", "/api/wallet/topups", map[string]any{"amount": 30001, "idempotency_key": "t1"})
	u.fails(400, "validation", "POST", "/api/wallet/topups", map[string]any{"amount": 1, "idempotency_key": "pay:x"})
	u.fails(400, "invalid_amount", "POST", "/api/wallet/topups", map[string]any{"amount": 0, "idempotency_key": "t0"})
	u.fails(410, "deposit_removed", "POST", "/api/wallet/deposit", map[string]any{"amount": 1000, "idempotency_key": "d"})
	var w struct {
		Balance   int64  `json:"balance"`
		Held      int64  `json:"held"`
		Provider  string `json:"provider"`
		TestMoney bool   `json:"test_money"`
	}
	u.must(200, "GET", "/api/wallet", nil, &w)
	if again.ID != p.ID || w.Balance != 30000 || w.Provider != "sandbox" || !w.TestMoney {
		t.Fatalf("after a repeated top-up: %+v then %+v, wallet %+v", p, again, w)
	}
	var txs struct {
		Transactions []fees.Line `json:"transactions"`
	}
	u.must(200, "GET", "/api/wallet/transactions", nil, &txs)
	if len(txs.Transactions) != 1 || txs.Transactions[0].Kind != "topup" || !txs.Transactions[0].Test {
		t.Fatalf("wallet lines %+v", txs.Transactions)
	}

	var wd paymentView
	u.must(201, "POST", "/api/wallet/withdrawals", map[string]any{"amount": 12000, "idempotency_key": "w1"}, &wd)
	if wd.Kind != "withdrawal" || wd.Status != "confirmed" {
		t.Fatalf("withdrawal %+v", wd)
	}
	u.must(200, "POST", "/api/wallet/withdrawals", map[string]any{"amount": 12000, "idempotency_key": "w1"}, nil)
	u.fails(409, "insufficient_funds", "POST", "/api/wallet/withdrawals", map[string]any{"amount": 18001, "idempotency_key": "w2"})
	u.fails(409, "insufficient_funds", "POST", "/api/wallet/withdrawals", map[string]any{"amount": 18001, "idempotency_key": "w2"})
	u.must(200, "GET", "/api/wallet", nil, &w)
	if w.Balance != 18000 || w.Held != 0 {
		t.Fatalf("after withdrawing 12000 of 30000: %+v", w)
	}
	checkBooks(t, n)
}

func TestPaymentsNotConfigured(t *testing.T) {
	cfg := testConfig(t)
	cfg.Payments = "off"
	n := startTestNode(t, cfg)
	u := n.user(t, "Payer")
	u.fails(503, "payments_not_configured", "POST", "/api/wallet/topups", map[string]any{"amount": 1000, "idempotency_key": "t"})
	u.fails(503, "payments_not_configured", "POST", "/api/wallet/withdrawals", map[string]any{"amount": 1000, "idempotency_key": "w"})
	u.fails(503, "payments_not_configured", "POST", "/api/wallet/topups/confirm", map[string]any{"order_id": "o", "payment_key": "k", "amount": 1000})
	if u.balance() != 0 {
		t.Fatal("money appeared with no provider")
	}
}

// tossConfirmStandIn is a local stand-in for Toss Payments' documented
// confirm and lookup API (POST /v1/payments/confirm, GET
// /v1/payments/{paymentKey}, GET /v1/payments/orders/{orderId}), the only way to run Toss's flow offline. It
// approves whatever checkout the test registered with paid().
type tossConfirmStandIn struct {
	mu       sync.Mutex
	paid     map[string]map[string]any // paymentKey → Toss Payment object
	confirms int
}

func (s *tossConfirmStandIn) pay(paymentKey, orderID string, amount int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paid[paymentKey] = map[string]any{"paymentKey": paymentKey, "orderId": orderID, "status": "DONE", "totalAmount": amount}
}

func (s *tossConfirmStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("test_sk_moim:")) {
		w.WriteHeader(401)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": "UNAUTHORIZED_KEY", "message": "bad key"})
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/payments/confirm":
		s.confirms++
		var req struct {
			PaymentKey, OrderID string
			Amount              int64
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		p := s.paid[req.PaymentKey]
		if p == nil || p["orderId"] != req.OrderID || p["totalAmount"] != req.Amount {
			w.WriteHeader(400)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "REJECT_CARD_PAYMENT", "message": "한도초과 혹은 잔액부족으로 결제에 실패했습니다."})
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payments/orders/"):
		order := strings.TrimPrefix(r.URL.Path, "/v1/payments/orders/")
		for _, p := range s.paid {
			if p["orderId"] == order {
				_ = json.NewEncoder(w).Encode(p)
				return
			}
		}
		w.WriteHeader(404)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": "NOT_FOUND_PAYMENT", "message": "없음"})
	case r.Method == http.MethodGet && len(r.URL.Path) > len("/v1/payments/"):
		p := s.paid[r.URL.Path[len("/v1/payments/"):]]
		if p == nil {
			w.WriteHeader(404)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "NOT_FOUND_PAYMENT", "message": "없음"})
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	default:
		w.WriteHeader(404)
	}
}

// TestTossTopUpConfirmAndWebhook runs Toss's flow against the stand-in:
// a top-up is pending with what the widget needs; only the server's
// confirm (or a notification checked back with Toss) credits the wallet,
// once, for the amount the top-up was started with.
func TestTossTopUpConfirmAndWebhook(t *testing.T) {
	cfg, toss, _ := tossNode(t)
	n := startTestNode(t, cfg)
	u, other := n.user(t, "Payer"), n.user(t, "Other")

	var p paymentView
	u.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "t1"}, &p)
	if p.Status != "pending" || p.Provider != "toss" || !p.Test || p.Checkout == nil || p.Checkout.ClientKey != "test_ck_moim" ||
		p.Checkout.OrderID != p.OrderID || p.Checkout.Amount != 50000 {
		t.Fatalf("toss top-up %+v", p)
	}
	if u.balance() != 0 {
		t.Fatal("a pending top-up credited the wallet")
	}
	// The browser pays 50,000 at Toss and comes back with the paymentKey.
	toss.pay("pk_1", p.OrderID, 50000)
	confirm := map[string]any{"order_id": p.OrderID, "payment_key": "pk_1", "amount": 50000}
	u.fails(400, "amount_mismatch", "POST", "/api/wallet/topups/confirm", map[string]any{"order_id": p.OrderID, "payment_key": "pk_1", "amount": 500})
	other.fails(404, "not_found", "POST", "/api/wallet/topups/confirm", confirm)
	var c paymentView
	u.must(200, "POST", "/api/wallet/topups/confirm", confirm, &c)
	u.must(200, "POST", "/api/wallet/topups/confirm", confirm, nil)
	if c.Status != "confirmed" || u.balance() != 50000 || toss.confirms != 1 {
		t.Fatalf("confirmed %+v; wallet %d after %d confirms at Toss", c, u.balance(), toss.confirms)
	}

	// A card Toss declines: the top-up fails, nothing is credited.
	var d paymentView
	u.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 9000, "idempotency_key": "t2"}, &d)
	u.must(200, "POST", "/api/wallet/topups/confirm", map[string]any{"order_id": d.OrderID, "payment_key": "pk_declined", "amount": 9000}, &d)
	if d.Status != "failed" || d.Failure == "" || u.balance() != 50000 {
		t.Fatalf("declined top-up %+v, wallet %d", d, u.balance())
	}

	// Paid at Toss, but the browser never came back: Toss's notification
	// is checked back with Toss and credits once; a forged one does not.
	var lost paymentView
	u.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 7000, "idempotency_key": "t3"}, &lost)
	anon := n.anon(t)
	anon.fails(404, "not_found", "POST", "/api/payments/webhook", map[string]any{"eventType": "PAYMENT_STATUS_CHANGED", "data": map[string]any{"paymentKey": "pk_forged", "orderId": lost.OrderID, "status": "DONE"}})
	toss.pay("pk_3", lost.OrderID, 7000)
	for range 2 {
		anon.must(200, "POST", "/api/payments/webhook", map[string]any{"eventType": "PAYMENT_STATUS_CHANGED", "data": map[string]any{"paymentKey": "pk_3", "status": "DONE"}}, nil)
	}
	if u.balance() != 57000 {
		t.Fatalf("after the notification: wallet %d, want 57000", u.balance())
	}
	// Toss cannot pay out through Moim: a withdrawal is refused with 501
	// before anything is held, and the wallet says so.
	u.fails(501, "payouts_not_supported", "POST", "/api/wallet/withdrawals", map[string]any{"amount": 1000, "idempotency_key": "w"})
	var w struct {
		Held        int64 `json:"held"`
		Withdrawals bool  `json:"withdrawals"`
	}
	u.must(200, "GET", "/api/wallet", nil, &w)
	if u.balance() != 57000 || w.Held != 0 || w.Withdrawals {
		t.Fatalf("after a refused toss withdrawal: wallet %d, %+v", u.balance(), w)
	}
	checkBooks(t, n)
}

var _ = alsoOn(onMemory, TestTossTopUpCancelledAtCheckout)

// TestTossTopUpCancelledAtCheckout: a top-up whose checkout the browser
// reports cancelled (Toss's failUrl) ends at once instead of waiting an
// hour: cancelled, nothing charged, gone from the wallet's pending list;
// repeating it is harmless; only its owner can; a confirmed top-up cannot
// be cancelled, and one Toss holds as paid is credited, not cancelled.
func TestTossTopUpCancelledAtCheckout(t *testing.T) {
	cfg, toss, _ := tossNode(t)
	n := startTestNode(t, cfg)
	u, other := n.user(t, "Payer"), n.user(t, "Other")
	type wallet struct {
		Balance int64 `json:"balance"`
		Pending []struct {
			OrderID string `json:"order_id"`
			Amount  int64  `json:"amount"`
		} `json:"pending_topups"`
	}
	pending := func() wallet {
		t.Helper()
		var w wallet
		u.must(200, "GET", "/api/wallet", nil, &w)
		return w
	}

	var p paymentView
	u.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 20000, "idempotency_key": "c1"}, &p)
	if w := pending(); len(w.Pending) != 1 || w.Pending[0].OrderID != p.OrderID || w.Pending[0].Amount != 20000 {
		t.Fatalf("the wallet lists pending top-ups %+v, want the one of 20,000", w.Pending)
	}
	cancel := map[string]any{"order_id": p.OrderID, "code": "PAY_PROCESS_CANCELED", "message": "사용자에 의해 결제가 취소되었습니다."}
	other.fails(404, "not_found", "POST", "/api/wallet/topups/cancel", cancel)
	u.fails(404, "not_found", "POST", "/api/wallet/topups/cancel", map[string]any{"order_id": "moim-nosuchorder"})
	var c paymentView
	u.must(200, "POST", "/api/wallet/topups/cancel", cancel, &c)
	if c.Status != "cancelled" || !strings.Contains(c.Failure, "PAY_PROCESS_CANCELED") || c.ID != p.ID {
		t.Fatalf("cancelled top-up %+v", c)
	}
	u.must(200, "POST", "/api/wallet/topups/cancel", cancel, &c)
	if c.Status != "cancelled" {
		t.Fatalf("a repeated cancel answered %+v", c)
	}
	if w := pending(); len(w.Pending) != 0 || w.Balance != 0 {
		t.Fatalf("after the cancel the wallet is %+v, want nothing pending and nothing credited", w)
	}
	// Coming back from Toss with a paymentKey after all confirms nothing:
	// the checkout ended, and Toss is never asked to take the money.
	toss.pay("pk_late", p.OrderID, 20000)
	u.must(200, "POST", "/api/wallet/topups/confirm", map[string]any{"order_id": p.OrderID, "payment_key": "pk_late", "amount": 20000}, &c)
	if c.Status != "cancelled" || toss.confirms != 0 || u.balance() != 0 {
		t.Fatalf("a confirm after the cancel: %+v, %d confirms at Toss, wallet %d", c, toss.confirms, u.balance())
	}

	// A confirmed top-up cannot be cancelled.
	var d paymentView
	u.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 30000, "idempotency_key": "c2"}, &d)
	toss.pay("pk_2", d.OrderID, 30000)
	u.must(200, "POST", "/api/wallet/topups/confirm", map[string]any{"order_id": d.OrderID, "payment_key": "pk_2", "amount": 30000}, &d)
	u.fails(409, "payment_confirmed", "POST", "/api/wallet/topups/cancel", map[string]any{"order_id": d.OrderID})
	if u.balance() != 30000 {
		t.Fatalf("wallet %d after the refused cancel, want 30000", u.balance())
	}

	// Toss holds a payment for the order as done (it was confirmed there,
	// the answer lost): a cancel credits it rather than losing it.
	var e paymentView
	u.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 4000, "idempotency_key": "c3"}, &e)
	toss.pay("pk_3", e.OrderID, 4000)
	u.fails(409, "payment_confirmed", "POST", "/api/wallet/topups/cancel", map[string]any{"order_id": e.OrderID})
	if u.balance() != 34000 || len(pending().Pending) != 0 {
		t.Fatalf("wallet %d after cancelling a top-up Toss holds as paid, want 34000 and nothing pending", u.balance())
	}
	u.fails(400, "bad_request", "POST", "/api/wallet/topups/cancel", map[string]any{"order_id": e.OrderID, "extra": 1})
	checkBooks(t, n)
}
