package fees

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"moim/payments"
)

// tossOrders stands in for Toss's payment lookup by order
// (GET /v1/payments/orders/{orderId}) and confirm, as documented: Toss
// cannot be reached offline, so this local stand-in of its HTTP API is
// the only way to test the client against it.
type tossOrders struct {
	mu   sync.Mutex
	paid map[string]int64 // orderId → amount Toss holds as DONE
}

func (s *tossOrders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	order := strings.TrimPrefix(r.URL.Path, "/v1/payments/orders/")
	if r.Method == http.MethodPost && r.URL.Path == "/v1/payments/confirm" {
		var req struct{ OrderID string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		order = req.OrderID
	}
	amount, ok := s.paid[order]
	if !ok {
		w.WriteHeader(404)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": "NOT_FOUND_PAYMENT", "message": "존재하지 않는 결제 정보 입니다."})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"paymentKey": "pk_" + order, "orderId": order, "status": "DONE", "totalAmount": amount})
}

// crashing is a provider that dies (panics, as a killed process stops)
// right after the provider did its part, once per armed operation: the
// database is left exactly as a crash at that point leaves it.
type crashing struct {
	payments.Provider
	mu              sync.Mutex
	confirm, payout bool
}

type crashed struct{}

func (c *crashing) Confirm(ctx context.Context, key, order string, amount int64) (*payments.Payment, error) {
	p, err := c.Provider.Confirm(ctx, key, order, amount)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.confirm {
		c.confirm = false
		panic(crashed{})
	}
	return p, err
}

func (c *crashing) Payout(ctx context.Context, o payments.Order) (bool, error) {
	done, err := c.Provider.Payout(ctx, o)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.payout {
		c.payout = false
		panic(crashed{})
	}
	return done, err
}

// survive runs op, which is expected to crash.
func survive(t *testing.T, op func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != (crashed{}) {
			t.Fatalf("expected the injected crash, got %v", r)
		}
	}()
	op()
	t.Fatal("the injected crash did not happen")
}

func balanceOf(t *testing.T, f *Fees, kind string, user int64) int64 {
	t.Helper()
	a, err := f.account(context.Background(), kind, user, true)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance
}

func paymentStatus(t *testing.T, db *gorm.DB, id int64) Payment {
	t.Helper()
	var p Payment
	if err := db.Take(&p, id).Error; err != nil {
		t.Fatal(err)
	}
	return p
}

// reconcileTwice runs Reconcile on two nodes at once, then again: a
// payment is completed or released once whoever gets there.
func reconcileTwice(t *testing.T, a, b *Fees) {
	t.Helper()
	var wg sync.WaitGroup
	for _, f := range []*Fees{a, b, a} {
		wg.Go(func() {
			if _, err := f.Reconcile(context.Background(), 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func testRecovery(t *testing.T, open func() *gorm.DB) {
	ctx := context.Background()
	stand := &tossOrders{paid: map[string]int64{}}
	srv := httptest.NewServer(stand)
	t.Cleanup(srv.Close)
	toss := &crashing{Provider: payments.NewToss("test_sk_moim", "test_ck_moim", srv.URL)}
	db := open()
	node := New(db, nil, 1_000_000, toss, prometheus.NewRegistry())
	if err := node.Migrate(); err != nil {
		t.Fatal(err)
	}
	other := New(open(), nil, 1_000_000, toss, prometheus.NewRegistry())

	// A top-up Toss confirmed, the node dying before crediting it.
	p, err := node.TopUp(ctx, 7, 30000, "t1")
	if err != nil {
		t.Fatal(err)
	}
	stand.paid[p.OrderID] = 30000
	toss.confirm = true
	survive(t, func() { _, _ = node.ConfirmTopUp(ctx, 7, p.OrderID, "pk_"+p.OrderID, 30000) })
	if got := paymentStatus(t, db, p.ID); got.Status != PaymentPending || balanceOf(t, node, KindWallet, 7) != 0 {
		t.Fatalf("after the crash: %s, wallet %d", got.Status, balanceOf(t, node, KindWallet, 7))
	}
	// A top-up nobody paid, and one still at checkout.
	abandoned, err := node.TopUp(ctx, 7, 5000, "t2")
	if err != nil {
		t.Fatal(err)
	}
	reconcileTwice(t, node, other)
	if got := paymentStatus(t, db, p.ID); got.Status != PaymentConfirmed || balanceOf(t, node, KindWallet, 7) != 30000 {
		t.Fatalf("after reconciling: %s, wallet %d, want confirmed and 30000 once", got.Status, balanceOf(t, node, KindWallet, 7))
	}
	if got := paymentStatus(t, db, abandoned.ID); got.Status != PaymentPending {
		t.Fatalf("a top-up still at checkout was settled: %+v", got)
	}
	later := func() time.Time { return time.Now().Add(unpaidExpiry + time.Minute) }
	node.SetClock(later)
	other.SetClock(later)
	reconcileTwice(t, node, other)
	if got := paymentStatus(t, db, abandoned.ID); got.Status != PaymentFailed || !strings.Contains(got.Failure, "NOT_FOUND_PAYMENT") {
		t.Fatalf("an abandoned top-up after an hour: %+v", got)
	}

	// Toss cannot pay out: a withdrawal is refused before anything is held.
	if _, err := node.Withdraw(ctx, 7, 10000, "w1"); err == nil || !strings.Contains(err.Error(), "payouts_not_supported") {
		t.Fatalf("a Toss withdrawal: %v", err)
	}
	if balanceOf(t, node, KindWallet, 7) != 30000 || balanceOf(t, node, KindHold, 7) != 0 {
		t.Fatalf("after the refused withdrawal: wallet %d, hold %d", balanceOf(t, node, KindWallet, 7), balanceOf(t, node, KindHold, 7))
	}

	// A sandbox withdrawal cut off after its payout: paid out, once.
	sandbox := &crashing{Provider: payments.Sandbox{}, payout: true}
	sn := New(db, nil, 1_000_000, sandbox, prometheus.NewRegistry())
	so := New(other.db, nil, 1_000_000, sandbox, prometheus.NewRegistry())
	if _, err := sn.TopUp(ctx, 8, 40000, "s1"); err != nil {
		t.Fatal(err)
	}
	survive(t, func() { _, _ = sn.Withdraw(ctx, 8, 15000, "s2") })
	var w Payment
	if err := db.Where("user_id = 8 AND idem_key = 's2'").Take(&w).Error; err != nil || w.Status != PaymentPending {
		t.Fatalf("the crashed sandbox withdrawal: %+v, %v", w, err)
	}
	reconcileTwice(t, sn, so)
	if got := paymentStatus(t, db, w.ID); got.Status != PaymentConfirmed {
		t.Fatalf("sandbox withdrawal after reconciling: %+v", got)
	}
	if balanceOf(t, sn, KindWallet, 8) != 25000 || balanceOf(t, sn, KindHold, 8) != 0 || balanceOf(t, sn, KindExternal, 0) != -25000-30000 {
		t.Fatalf("after the sandbox payout: wallet %d, hold %d, external %d", balanceOf(t, sn, KindWallet, 8), balanceOf(t, sn, KindHold, 8), balanceOf(t, sn, KindExternal, 0))
	}
}

// TestReconcileFinishesCutOffPaymentsMySQL: payments a crash cut off are
// completed or released exactly once, on MariaDB, by two nodes at once.
func TestReconcileFinishesCutOffPaymentsMySQL(t *testing.T) {
	_, dsn := mysqlDatabase(t, " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	testRecovery(t, func() *gorm.DB { return openMySQL(t, dsn) })
}

// TestReconcileFinishesCutOffPaymentsSQLite is the same on SQLite.
func TestReconcileFinishesCutOffPaymentsSQLite(t *testing.T) {
	dir := t.TempDir()
	testRecovery(t, func() *gorm.DB { return openSQLite(t, dir) })
}
