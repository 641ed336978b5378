package hub

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"moim/api"
)

// upgradesPerCore bounds the upgrades a node works on at once (checking
// the token, looking the user up, the handshake, joining the rooms), per
// core, when they wait on the network (Redis, MariaDB) [Config.Upgrades].
// A reconnect storm of thousands of clients then waits parked in the gate
// instead of being thousands of runnable goroutines that every
// established connection's send and delivery would queue behind in the
// scheduler: upgrades finish at the rate the node can do them either way,
// and the chat already running keeps its latency.
const upgradesPerCore = 4

// upgradeWait is how long an upgrade waits for the gate before 503: about
// what a client's handshake timeout allows, so a refused client has not
// given up already, and short enough that a node far behind sheds the
// storm to its retries (and the load balancer to other nodes).
const upgradeWait = 5 * time.Second

// upgradeGate is the bound of Config.Upgrades, a counting semaphore.
type upgradeGate chan struct{}

// enter waits for a slot until ctx ends or upgradeWait passes; leave gives
// it back. A client refused gets 503 with a Retry-After of one or two
// seconds (spread, so the storm comes back spread).
func (g upgradeGate) enter(ctx context.Context, c *fiber.Ctx) (leave func(), err error) {
	select {
	case g <- struct{}{}:
		return func() { <-g }, nil
	default:
	}
	t := time.NewTimer(upgradeWait)
	defer t.Stop()
	select {
	case g <- struct{}{}:
		return func() { <-g }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(1+rand.IntN(2)))
		return nil, api.Errorf(fiber.StatusServiceUnavailable, "unavailable", "this node is busy taking other connections; try again shortly")
	}
}
