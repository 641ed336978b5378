package payments

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// tossStandIn is a local stand-in for Toss Payments' documented confirm
// and lookup API (POST /v1/payments/confirm, GET /v1/payments/{key},
// GET /v1/payments/orders/{orderId}):
// these tests run offline, so they cannot reach api.tosspayments.com.
// It holds one checkout the "browser" completed: paymentKey pk_1 for
// order ord_1 of 30,000 won.
func tossStandIn(t *testing.T, secret string) (*httptest.Server, *[]string) {
	var idemKeys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(secret+":")) {
			w.WriteHeader(401)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "UNAUTHORIZED_KEY", "message": "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다."})
			return
		}
		payment := map[string]any{"paymentKey": "pk_1", "orderId": "ord_1", "status": "DONE", "totalAmount": 30000, "method": "카드"}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/payments/confirm":
			idemKeys = append(idemKeys, r.Header.Get("Idempotency-Key"))
			var req struct {
				PaymentKey string `json:"paymentKey"`
				OrderID    string `json:"orderId"`
				Amount     int64  `json:"amount"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.PaymentKey != "pk_1" || req.OrderID != "ord_1" {
				w.WriteHeader(404)
				_ = json.NewEncoder(w).Encode(map[string]string{"code": "NOT_FOUND_PAYMENT", "message": "존재하지 않는 결제 정보 입니다."})
				return
			}
			if req.Amount != 30000 {
				w.WriteHeader(400)
				_ = json.NewEncoder(w).Encode(map[string]string{"code": "INVALID_REQUEST", "message": "결제 금액이 일치하지 않습니다."})
				return
			}
			_ = json.NewEncoder(w).Encode(payment)
		case r.Method == http.MethodGet && (r.URL.Path == "/v1/payments/pk_1" || r.URL.Path == "/v1/payments/orders/ord_1"):
			_ = json.NewEncoder(w).Encode(payment)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payments/orders/"):
			w.WriteHeader(404)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "NOT_FOUND_PAYMENT", "message": "존재하지 않는 결제 정보 입니다."})
		default:
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &idemKeys
}

func TestTossConfirmAgainstStandIn(t *testing.T) {
	srv, idem := tossStandIn(t, "test_sk_secret")
	toss := NewToss("test_sk_secret", "test_ck_client", srv.URL)
	ctx := context.Background()
	if !toss.Test() {
		t.Fatal("a test_ secret key is test money")
	}
	c, err := toss.Checkout(ctx, Order{ID: "ord_1", UserID: 7, Amount: 30000, Name: "Moim 지갑 충전"})
	if err != nil || c.ClientKey != "test_ck_client" || c.OrderID != "ord_1" || c.Amount != 30000 || c.CustomerKey != "moim-user-7" {
		t.Fatalf("checkout %+v, %v", c, err)
	}
	p, err := toss.Confirm(ctx, "pk_1", "ord_1", 30000)
	if err != nil || !p.Done() || p.Amount != 30000 {
		t.Fatalf("confirm: %+v, %v", p, err)
	}
	if len(*idem) != 1 || (*idem)[0] != "ord_1" {
		t.Fatalf("confirm sent Idempotency-Key %v, want the order id", *idem)
	}
	// A changed amount is refused by Toss, and the refusal is final.
	var ref *Refusal
	if _, err := toss.Confirm(ctx, "pk_1", "ord_1", 1000); !errors.As(err, &ref) || ref.Code != "INVALID_REQUEST" {
		t.Fatalf("confirm with another amount: %v", err)
	}
	if p, err := toss.Lookup(ctx, "pk_1"); err != nil || p.OrderID != "ord_1" || !p.Done() {
		t.Fatalf("lookup: %+v, %v", p, err)
	}
	// Looking up by order (crash recovery): a paid order, and one Toss has
	// no payment for, which is a refusal.
	if p, err := toss.LookupOrder(ctx, "ord_1"); err != nil || p.PaymentKey != "pk_1" || !p.Done() || p.Amount != 30000 {
		t.Fatalf("lookup by order: %+v, %v", p, err)
	}
	if _, err := toss.LookupOrder(ctx, "ord_unpaid"); !errors.As(err, &ref) || ref.Code != "NOT_FOUND_PAYMENT" {
		t.Fatalf("lookup of an unpaid order: %v", err)
	}
	// A wrong secret key is a refusal naming Toss's code.
	if _, err := NewToss("test_sk_wrong", "", srv.URL).Confirm(ctx, "pk_1", "ord_1", 30000); !errors.As(err, &ref) || ref.Code != "UNAUTHORIZED_KEY" {
		t.Fatalf("wrong key: %v", err)
	}
	// A server error is not a refusal: the caller may retry.
	if _, err := toss.Lookup(ctx, "pk_other"); err == nil || errors.As(err, &ref) || !strings.Contains(err.Error(), "500") {
		t.Fatalf("server error: %v", err)
	}
	if _, err := toss.Payout(ctx, Order{ID: "w1", Amount: 1}); !errors.Is(err, ErrUnsupported) || toss.PaysOut() {
		t.Fatalf("payout: %v", err)
	}
}
