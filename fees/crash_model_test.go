package fees

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"moim/internal/testkit"
	"moim/payments"
)

// The crash model check runs a seeded random sequence of top-ups,
// withdrawals and member transfers through the real ledger code against a
// real database, and kills the process (a panic at a named stop point,
// stops.go) between the steps of about half of them: after the provider
// confirmed but before the credit, inside and right after a ledger
// transaction, after the hold but before the payout, after the payout but
// before the hold is settled. A new node on a new connection pool then
// runs the start-up reconciliation, and a client that lost its answer
// retries with the same key. After every operation the books must hold:
// money entered only through top-ups the provider confirmed and left only
// through payouts it made; every hold is released or settled; every
// account's balance is the sum of its ledger lines, and all of them sum
// to zero; each wallet holds what the model predicts. Rerun a failure with
// MOIM_CRASH_SEED.

// modelRooms is every user existing, each pair with a 1:1 room.
type modelRooms struct{}

func (modelRooms) Role(context.Context, int64, int64) (string, error) { return "member", nil }
func (modelRooms) DisplayName(_ context.Context, id int64) (string, error) {
	return "회원 " + strconv.FormatInt(id, 10), nil
}
func (modelRooms) DisplayNames(_ context.Context, ids []int64) (map[int64]string, error) {
	out := map[int64]string{}
	for _, id := range ids {
		out[id] = "회원 " + strconv.FormatInt(id, 10)
	}
	return out, nil
}
func (modelRooms) Roster(context.Context, int64) ([]int64, error) { return nil, nil }
func (modelRooms) DirectRoom(_ context.Context, a, b int64) (int64, error) {
	return 1000*min(a, b) + max(a, b), nil
}

// payingToss is Toss (its client, against the local stand-in of its
// payment API) with a payout added: Toss pays nothing out through Moim,
// so the withdrawal path is driven by this stand-in, which pays out
// idempotently by order and declines an account (amounts ending in 3).
type payingToss struct {
	*payments.Toss
	mu      sync.Mutex
	paidOut map[string]int64
}

func (p *payingToss) PaysOut() bool { return true }

func (p *payingToss) Payout(_ context.Context, o payments.Order) (bool, error) {
	if o.Amount%10 == 3 {
		return false, &payments.Refusal{Code: "INVALID_ACCOUNT", Message: "계좌 정보가 올바르지 않습니다."}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paidOut[o.ID] = o.Amount
	return true, nil
}

// armed is the stop point a node dies at: the skip+1th time it is reached.
type armed struct {
	point string
	skip  int
	hit   bool
}

func (a *armed) stop(point string) {
	if a == nil || a.hit || point != a.point {
		return
	}
	if a.skip > 0 {
		a.skip--
		return
	}
	a.hit = true
	panic(crashed{})
}

func testCrashModel(t *testing.T, open func() *gorm.DB) {
	rng, fail := testkit.Seeded(t, "MOIM_CRASH_SEED")
	ctx := context.Background()
	stand := &tossOrders{paid: map[string]int64{}}
	srv := httptest.NewServer(stand)
	t.Cleanup(srv.Close)
	provider := &payingToss{Toss: payments.NewToss("test_sk_moim", "test_ck_moim", srv.URL), paidOut: map[string]int64{}}
	db := open()
	node := New(db, modelRooms{}, 1_000_000, provider, prometheus.NewRegistry())
	if err := node.Migrate(); err != nil {
		t.Fatal(err)
	}

	users := []int64{1, 2, 3}
	wallet := map[int64]int64{}
	crashes := map[string]int{}
	const steps = 60
	for step := range steps {
		u := users[rng.IntN(len(users))]
		amount := int64(1+rng.IntN(20))*1000 + []int64{0, 0, 3}[rng.IntN(3)]
		key := fmt.Sprintf("s%d", step)
		// points lists where this operation can die, with how often each
		// is reached on its path.
		var points map[string]int
		var run func(f *Fees) error
		var desc string
		lost := false // a transfer rolled back by the crash and never retried
		var to int64
		switch k := rng.IntN(3); k {
		case 0:
			desc = "top-up"
			points = map[string]int{StopTopUpConfirmed: 1, StopLedgerUncommitted: 1, StopLedgerCommitted: 1, StopTopUpCredited: 1}
			run = func(f *Fees) error {
				p, err := f.TopUp(ctx, u, amount, key)
				if err != nil {
					return err
				}
				// The browser pays at Toss and comes back to confirm.
				stand.mu.Lock()
				stand.paid[p.OrderID] = amount
				stand.mu.Unlock()
				_, err = f.ConfirmTopUp(ctx, u, p.OrderID, "pk_"+p.OrderID, amount)
				return err
			}
		case 1:
			desc = "withdrawal"
			switch {
			case amount > wallet[u]:
				// The hold is refused (and the refusal committed).
				points = map[string]int{StopWithdrawalStarted: 1, StopLedgerCommitted: 1}
			case amount%10 == 3: // hold, declined, released
				points = map[string]int{StopWithdrawalStarted: 1, StopLedgerUncommitted: 2, StopLedgerCommitted: 2, StopWithdrawalHeld: 1, StopWithdrawalSettled: 1}
			default: // hold, paid out, settled
				points = map[string]int{StopWithdrawalStarted: 1, StopLedgerUncommitted: 2, StopLedgerCommitted: 2, StopWithdrawalHeld: 1, StopWithdrawalPaidOut: 1, StopWithdrawalSettled: 1}
			}
			run = func(f *Fees) error {
				_, err := f.Withdraw(ctx, u, amount, key)
				return err
			}
		default:
			desc = "transfer"
			to = users[(slices.Index(users, u)+1+rng.IntN(len(users)-1))%len(users)]
			points = map[string]int{StopLedgerCommitted: 1}
			if amount <= wallet[u] {
				points[StopLedgerUncommitted] = 1
			}
			run = func(f *Fees) error {
				_, err := f.Send(ctx, u, to, amount, "밥값", key)
				return err
			}
		}
		where := fmt.Sprintf("step %d: %s of %d by user %d", step, desc, amount, u)

		var stop *armed
		if rng.IntN(2) == 0 {
			names := slices.Sorted(maps.Keys(points))
			p := names[rng.IntN(len(names))]
			stop = &armed{point: p, skip: rng.IntN(points[p])}
		}
		node.stop = stop.stop
		var err error
		died := func() (died bool) {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(crashed); !ok {
						panic(r)
					}
					died = true
				}
			}()
			err = run(node)
			return false
		}()
		if stop != nil && !died {
			fail("%s: the armed stop %s (skip %d) was never reached", where, stop.point, stop.skip)
		}
		if died {
			crashes[stop.point]++
			// The process is gone; a new one starts on a new pool and
			// reconciles what was cut off. Its clock is a second on, so
			// the payment cut off just now counts as stale.
			closeGorm(db)
			db = open()
			node = New(db, modelRooms{}, 1_000_000, provider, prometheus.NewRegistry())
			node.SetClock(func() time.Time { return time.Now().Add(time.Second) })
			if _, rerr := node.Reconcile(ctx, 0); rerr != nil {
				fail("%s: reconcile after a crash at %s: %v", where, stop.point, rerr)
			}
			// The client never heard: half the time it retries the same
			// request with the same key.
			if rng.IntN(2) == 0 {
				err = run(node)
			} else {
				err, lost = nil, stop.point == StopLedgerUncommitted
			}
			node.SetClock(time.Now)
		}
		if err != nil && !errors.Is(err, errInsufficient) {
			fail("%s: %v", where, err)
		}
		switch desc {
		case "top-up":
			// Paid at Toss: credited once, by the confirm or by the
			// reconciliation after a crash.
			wallet[u] += amount
		case "withdrawal":
			if amount <= wallet[u] && amount%10 != 3 {
				wallet[u] -= amount
			}
		case "transfer":
			// A transfer that fits moves once, unless the crash rolled it
			// back and the client never retried.
			if amount <= wallet[u] && !lost {
				wallet[u] -= amount
				wallet[to] += amount
			}
		}
		checkCrashBooks(t, fail, where, db, provider, stand, wallet)
	}
	t.Logf("%d steps; crashes by point: %v", steps, crashes)
}

// checkCrashBooks asserts the money invariants after one step.
func checkCrashBooks(t *testing.T, fail func(string, ...any), where string, db *gorm.DB, provider *payingToss, stand *tossOrders, wallet map[int64]int64) {
	t.Helper()
	var accounts []Account
	if err := db.Find(&accounts).Error; err != nil {
		t.Fatal(err)
	}
	var sums []struct {
		AccountID int64
		Total     int64
	}
	if err := db.Model(&Entry{}).Select("account_id, SUM(amount) AS total").Group("account_id").Scan(&sums).Error; err != nil {
		t.Fatal(err)
	}
	lines := map[int64]int64{}
	for _, s := range sums {
		lines[s.AccountID] = s.Total
	}
	var all, external int64
	for _, a := range accounts {
		all += a.Balance
		if a.Balance != lines[a.ID] {
			fail("%s: %s account %d of %d holds %d, its ledger lines sum to %d", where, a.Kind, a.ID, a.OwnerID, a.Balance, lines[a.ID])
		}
		switch a.Kind {
		case KindHold:
			if a.Balance != 0 {
				fail("%s: user %d has %d held after reconciling", where, a.OwnerID, a.Balance)
			}
		case KindExternal:
			external = a.Balance
		case KindWallet:
			if a.Balance != wallet[a.OwnerID] {
				fail("%s: user %d's wallet holds %d, the model says %d", where, a.OwnerID, a.Balance, wallet[a.OwnerID])
			}
		}
	}
	if all != 0 {
		fail("%s: the accounts sum to %d, not 0", where, all)
	}
	var ps []Payment
	if err := db.Find(&ps).Error; err != nil {
		t.Fatal(err)
	}
	var in, out int64
	stand.mu.Lock()
	provider.mu.Lock()
	defer stand.mu.Unlock()
	defer provider.mu.Unlock()
	for _, p := range ps {
		switch {
		case p.Status == PaymentPending:
			fail("%s: payment %d (%s) still pending after reconciling", where, p.ID, p.Kind)
		case p.Kind == PaymentTopUp && p.Status == PaymentConfirmed:
			if stand.paid[p.OrderID] != p.Amount {
				fail("%s: top-up %d credited %d, Toss holds %d for it", where, p.ID, p.Amount, stand.paid[p.OrderID])
			}
			in += p.Amount
		case p.Kind == PaymentWithdrawal && p.Status == PaymentConfirmed:
			if provider.paidOut[p.OrderID] != p.Amount {
				fail("%s: withdrawal %d settled %d, the provider paid out %d", where, p.ID, p.Amount, provider.paidOut[p.OrderID])
			}
			out += p.Amount
		case p.Kind == PaymentWithdrawal && provider.paidOut[p.OrderID] != 0:
			fail("%s: withdrawal %d failed, yet the provider paid it out", where, p.ID)
		}
	}
	var paidOut int64
	for _, a := range provider.paidOut {
		paidOut += a
	}
	if -external != in-out || paidOut != out {
		fail("%s: %d came in through confirmed top-ups and %d went out (%d paid out), yet the wallets hold %d", where, in, out, paidOut, -external)
	}
}

// TestCrashModelMySQL runs the crash model check on MariaDB.
func TestCrashModelMySQL(t *testing.T) {
	_, dsn := mysqlDatabase(t, " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	testCrashModel(t, func() *gorm.DB { return openMySQL(t, dsn) })
}

// TestCrashModelSQLite runs the crash model check on SQLite.
func TestCrashModelSQLite(t *testing.T) {
	dir := t.TempDir()
	testCrashModel(t, func() *gorm.DB { return openSQLite(t, dir) })
}
