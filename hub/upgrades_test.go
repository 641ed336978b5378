package hub

import (
	"log/slog"
	"net/http/httptest"
	"strconv"
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
