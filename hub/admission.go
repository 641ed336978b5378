package hub

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"moim/api"
)

// admissionWindow is how often the node judges its lag anew: short
// enough that a node which caught up takes sends again within a tenth of
// a second, long enough to hold many samples under load.
const admissionWindow = 100 * time.Millisecond

// admission decides whether this node takes new sends. Past its capacity
// a node that took every send would queue them (in the commit queue, the
// deliverers' queues, the sockets' write queues, the kernel's buffers)
// and every message's latency would grow for as long as the load lasts;
// instead, while it is behind, it refuses sends at once with error busy
// and a retry_after_ms, stores nothing of them, and the client resends
// the same cid later (docs/PROTOCOL.md). Behind means the worst lag of
// the last window passed the limit, the lag being any of: a message's
// wait from acceptance to being written to a local recipient (fan-out,
// both engines), a send's wait for its ack (the group commit, or the
// Redis round trip), and how long sends in flight went without any of
// them finishing (a stuck store yields no samples of the other two).
type admission struct {
	limit time.Duration // lag past which sends are refused
	// worst is the current window's worst lag in nanoseconds.
	worst atomic.Int64
	// inflight counts sends waiting for their ack; finished counts acks
	// (and failures), so a window with sends waiting and none finished
	// is a stall.
	inflight, finished atomic.Int64
	// retry is the wait in milliseconds told to a refused client, 0
	// while the node takes sends: the only thing a send reads.
	retry atomic.Int64
	lag   prometheus.Gauge
}

func newAdmission(limit time.Duration, reg prometheus.Registerer) *admission {
	a := &admission{limit: limit, lag: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "moim_hub_lag_seconds",
		Help: "This node's worst lag over the last 100 ms as admission judges it: acceptance to delivery, a send's wait for its ack, or sends in flight with none finishing. Past MOIM_BUSY_LAG new sends are refused as busy.",
	})}
	reg.MustRegister(a.lag)
	return a
}

// observe counts one lag sample into the current window.
func (a *admission) observe(d time.Duration) {
	n := int64(d)
	for {
		cur := a.worst.Load()
		if n <= cur || a.worst.CompareAndSwap(cur, n) {
			return
		}
	}
}

// run judges each window until ctx ends.
func (a *admission) run(ctx context.Context) {
	t := time.NewTicker(admissionWindow)
	defer t.Stop()
	var stall time.Duration
	last := a.finished.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fin := a.finished.Load()
		if a.inflight.Load() > 0 && fin == last {
			stall += admissionWindow
		} else {
			stall = 0
		}
		last = fin
		a.judge(max(time.Duration(a.worst.Swap(0)), stall))
	}
}

// maxRetryAfter caps the wait told to a client, so one long stall does
// not park every sender for long after it ends.
const maxRetryAfter = 5 * time.Second

// judge sets whether sends are taken after a window whose worst lag was
// lag. A refused client waits about as long as the lag: roughly how long
// the queued work takes to drain once no more joins it.
func (a *admission) judge(lag time.Duration) {
	a.lag.Set(lag.Seconds())
	if lag <= a.limit {
		a.retry.Store(0)
		return
	}
	a.retry.Store(min(max(lag, admissionWindow), maxRetryAfter).Milliseconds())
}

// busy is the wait to tell a client whose send is refused, 0 when the
// node takes sends. The wait is spread over [base, 2·base) so refused
// clients do not all come back in the same instant.
func (a *admission) busy() time.Duration {
	base := a.retry.Load()
	if base == 0 {
		return 0
	}
	return time.Duration(base+rand.Int64N(base)) * time.Millisecond
}

// busyMessage is what a refused client reads.
const busyMessage = "server busy; nothing stored, resend the same cid after retry_after_ms"

// refuseBusy answers a send the node is too far behind to take.
func (h *Hub) refuseBusy(c *Conn, cid string, room int64, wait time.Duration) {
	h.metrics.errors.WithLabelValues("busy").Inc()
	c.write(textFrame(encode(errorEvent{Type: "error", Code: "busy", Message: busyMessage,
		CID: cid, Room: room, RetryAfterMS: max(wait.Milliseconds(), 1)})))
}

// busyREST is refuseBusy for a REST send: 503 with Retry-After in whole
// seconds (the header has no finer unit).
func (h *Hub) busyREST(c *fiber.Ctx, wait time.Duration) error {
	h.metrics.errors.WithLabelValues("busy").Inc()
	secs := max(int64((wait+time.Second-1)/time.Second), 1)
	c.Set(fiber.HeaderRetryAfter, strconv.FormatInt(secs, 10))
	return api.Errorf(fiber.StatusServiceUnavailable, "busy", busyMessage)
}
