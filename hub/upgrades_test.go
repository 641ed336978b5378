package hub

import (
	"log/slog"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"moim/api"
)

// TestUpgradeGateRefusesWhenFull: with every slot taken an upgrade waits
// upgradeWait, then gets 503 unavailable with a Retry-After of 1–2 s; a
// slot given back lets the next one in at once.
func TestUpgradeGateRefusesWhenFull(t *testing.T) {
	g := make(upgradeGate, 1)
	app := fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(slog.New(slog.DiscardHandler))})
	app.Get("/ws", func(c *fiber.Ctx) error {
		leave, err := g.enter(c.UserContext(), c)
		if err != nil {
			return err
		}
		leave()
		return c.SendStatus(fiber.StatusNoContent)
	})
	get := func() (int, string, time.Duration) {
		start := time.Now()
		resp, err := app.Test(httptest.NewRequest("GET", "/ws", nil), int(2*upgradeWait/time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get(fiber.HeaderRetryAfter), time.Since(start)
	}
	if status, _, _ := get(); status != fiber.StatusNoContent {
		t.Fatalf("an empty gate: %d, want 204", status)
	}
	g <- struct{}{} // an upgrade in progress
	status, retry, waited := get()
	if status != fiber.StatusServiceUnavailable || waited < upgradeWait {
		t.Fatalf("a full gate: %d after %v, want 503 after %v", status, waited, upgradeWait)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 2 {
		t.Fatalf("Retry-After %q, want 1 or 2", retry)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		<-g // the upgrade in progress ends
	}()
	if status, _, _ := get(); status != fiber.StatusNoContent {
		t.Fatalf("a slot freed while waiting: %d, want 204", status)
	}
}

// TestGateHoldsTheWholeUpgrade: the token check runs inside the gate's
// slot (a storm's thousands of token checks are not all runnable at
// once), and a request refused after the gate, by the token check or by
// Handler, gives its slot back: leaked slots would lock the node's
// WebSockets out one refusal at a time.
func TestGateHoldsTheWholeUpgrade(t *testing.T) {
	h := &Hub{upgrades: make(upgradeGate, 1)}
	var checked atomic.Int32
	token := func(c *fiber.Ctx) error { // stands for the token middleware
		checked.Add(1)
		if c.Get(fiber.HeaderAuthorization) == "" {
			return api.Unauthorized("missing token")
		}
		return c.Next()
	}
	app := fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(slog.New(slog.DiscardHandler))})
	app.Get("/ws", h.Gate(), token, h.Handler(func(*fiber.Ctx) int64 { return 1 }, func(*fiber.Ctx) string { return "t" }))
	get := func(auth string) int {
		req := httptest.NewRequest("GET", "/ws", nil)
		if auth != "" {
			req.Header.Set(fiber.HeaderAuthorization, auth)
		}
		resp, err := app.Test(req, int(2*upgradeWait/time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	for range 3 { // more refusals than slots
		if status := get(""); status != fiber.StatusUnauthorized {
			t.Fatalf("no token: %d, want 401", status)
		}
		if status := get("Bearer t"); status != fiber.StatusBadRequest { // no Upgrade header: Handler refuses
			t.Fatalf("not an upgrade: %d, want 400", status)
		}
	}
	if n := len(h.upgrades); n != 0 {
		t.Fatalf("%d slots still held after refused requests", n)
	}
	if n := checked.Load(); n != 6 {
		t.Fatalf("token checked %d times, want 6", n)
	}
	h.upgrades <- struct{}{} // an upgrade in progress
	if status := get("Bearer t"); status != fiber.StatusServiceUnavailable {
		t.Fatalf("a full gate: %d, want 503", status)
	}
	if n := checked.Load(); n != 6 {
		t.Fatalf("the token was checked while the gate was full (%d checks, want 6)", n)
	}
}
