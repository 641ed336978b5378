package fees_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"

	"moim/accounts"
	"moim/fees"
	"moim/payments"
	"moim/teststack"
)

// kst is Korea's time zone, which dues periods and auto-pay follow.
var kst = time.FixedZone("KST", 9*3600)

// serve starts the money routes beside the account and room routes on
// MariaDB and Redis (a fresh database and key prefix), without the
// real-time side: fee events wait in the outbox, unannounced. The
// auto-pay scheduler runs every 100 ms, as on a node's API role.
func serve(t *testing.T) *teststack.Stack {
	t.Helper()
	s := teststack.New(t, teststack.OnMariaDB)
	money := fees.New(s.DB, s.People(), 100_000_000, payments.Sandbox{}, s.Registry)
	money.UsePINCost(bcrypt.MinCost) // as the test nodes hash passwords: seconds less per PIN under -race
	if err := money.Migrate(); err != nil {
		t.Fatal(err)
	}
	s.Rooms.OnMoney(departures{money, t})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { money.Schedule(ctx, 100*time.Millisecond, slog.New(slog.DiscardHandler)) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	s.Serve(t, func(r fiber.Router, auth fiber.Handler) { money.Routes(r, auth, accounts.UserID) })
	return s
}

// departures ties room deletions and departures to the fees module, as
// the node does; a failure to cancel auto-pay fails the test.
type departures struct {
	*fees.Fees
	t *testing.T
}

// Departed cancels departed members' auto-pay.
func (d departures) Departed(ctx context.Context, roomID int64, userIDs []int64, deleted bool) {
	if err := d.Fees.Departed(ctx, roomID, userIDs, deleted); err != nil {
		d.t.Errorf("cancel auto-pay of departed members: %v", err)
	}
}
