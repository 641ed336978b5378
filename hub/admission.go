package hub

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"moim/api"
)

// admissionWindow is how often the node judges its lag anew: short
// enough to follow the load within a few windows, long enough to hold
// many samples under load.
const admissionWindow = 100 * time.Millisecond

// admission decides whether this node takes new sends. Past its capacity
// a node that took every send would queue them (in the commit queue, the
// deliverers' queues, the sockets' write queues, the kernel's buffers)
// and every message's latency would grow for as long as the load lasts;
// instead, while it is behind, it refuses a share of the sends at once
// with error busy and a retry_after_ms, stores nothing of them, and the
// client resends the same cid later (docs/PROTOCOL.md).
//
// Behind means the worst lag of the last window passed the limit, the
// lag being any of: a message's wait from acceptance to being written to
// a local recipient (fan-out, both engines), a send's wait for its ack
// (the group commit, or the Redis round trip), how long sends in flight
// went without any of them finishing (a stuck store yields no samples of
// the others), and the shortest wait of a readable connection for a
// worker. That last one is lag before any send is accepted, which no
// other sample sees (a node whose workers cannot keep up leaves frames in
// the sockets); its shortest rather than its longest, as CoDel judges a
// queue, because a burst or a GC pause makes some connections wait
// while only a queue that never drains makes every one of them wait.
// The share taken adapts as TCP's window does: each window behind halves
// it, each window well within the limit adds a twentieth back. Refusing
// everything while behind and taking everything after swung between an
// idle node and a flood of retries (docs/BENCHMARKS.md, "Past
// capacity"); the share is meant to settle near what the node can carry.
type admission struct {
	limit time.Duration // lag past which the share taken shrinks
	// worst is the current window's worst lag in nanoseconds.
	worst atomic.Int64
	// wait is the current window's shortest wait for a worker in
	// nanoseconds, noWait when there was none.
	wait atomic.Int64
	// inflight counts sends waiting for their ack; finished counts acks
	// (and failures), so a window with sends waiting and none finished
	// is a stall.
	inflight, finished atomic.Int64
	// gate is the share of sends taken, scaled to 1<<32 (gateAll: all),
	// and retry the base wait in milliseconds told to a refused client:
	// a send reads gate alone unless some are refused.
	gate  atomic.Uint64
	retry atomic.Int64
	// share is gate as the judging goroutine keeps it.
	share float64
	lag   prometheus.Gauge
	taken prometheus.Gauge
}

const gateAll = 1 << 32

// noWait marks a window in which no connection waited for a worker.
const noWait = math.MaxInt64

// Admission's steps per window: behind halves the share taken, well
// within the limit (under half of it) adds a twentieth, so from the
// floor all sends are taken again within about two seconds. The floor
// keeps some sends going, which keeps the lag measured.
const (
	shareCut   = 0.5
	shareStep  = 0.05
	shareFloor = 0.02
)

func newAdmission(limit time.Duration, reg prometheus.Registerer) *admission {
	a := &admission{limit: limit, share: 1,
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "moim_hub_lag_seconds",
			Help: "This node's worst lag over the last 100 ms as admission judges it: acceptance to delivery, a send's wait for its ack, sends in flight with none finishing, or the shortest wait of a readable connection for a worker. Past MOIM_BUSY_LAG a share of new sends is refused as busy.",
		}),
		taken: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "moim_hub_send_share",
			Help: "Share of new sends this node takes (1: all); the rest are refused as busy while it is behind (MOIM_BUSY_LAG).",
		}),
	}
	a.gate.Store(gateAll)
	a.wait.Store(noWait)
	a.taken.Set(1)
	reg.MustRegister(a.lag, a.taken)
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

// observeWait counts a readable connection's wait for a worker into the
// current window.
func (a *admission) observeWait(d time.Duration) {
	n := int64(d)
	for {
		cur := a.wait.Load()
		if n >= cur || a.wait.CompareAndSwap(cur, n) {
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
		wait := a.wait.Swap(noWait)
		if wait == noWait {
			wait = 0
		}
		a.judge(max(time.Duration(a.worst.Swap(0)), stall, time.Duration(wait)))
	}
}

// maxRetryAfter caps the base wait told to a client, so one long stall
// does not park every sender for long after it ends.
const maxRetryAfter = 10 * time.Second

// retryScale is how many times the limit divided by the share a refused
// client is told to wait. A refusal is not free (a frame read, parsed
// and answered, then its retry): told the limit divided by the share,
// 10,000 reference clients past capacity came back so often that
// refusing them took the CPU the deliveries needed, and the acked
// messages' p99 was 1.8–2.8 s; told eight times that, the node refused
// a fraction as many, took more and delivered them at p99 0.45–0.75 s
// (docs/BENCHMARKS.md, "Session 31").
const retryScale = 8

// judge adapts the share of sends taken after a window whose worst lag
// was lag, and the wait told to refused clients: retryScale times the
// limit divided by the share (at least a window, at most
// maxRetryAfter). The fewer sends the node takes, the longer refused
// clients stay away, so their retries do not grow into more work than
// the sends they stand for.
func (a *admission) judge(lag time.Duration) {
	a.lag.Set(lag.Seconds())
	switch {
	case lag > a.limit:
		a.share = max(a.share*shareCut, shareFloor)
	case lag <= a.limit/2:
		a.share = min(a.share+shareStep, 1)
	}
	a.taken.Set(a.share)
	wait := time.Duration(retryScale * float64(a.limit) / a.share)
	a.retry.Store(min(max(wait, admissionWindow), maxRetryAfter).Milliseconds())
	a.gate.Store(uint64(a.share * gateAll))
}

// behind reports whether the node takes fewer than all sends: it was
// behind within the last few seconds (each window within the limit adds
// shareStep back).
func (a *admission) behind() bool { return a.gate.Load() < gateAll }

// busy is the wait to tell a client whose send is refused, 0 when the
// send is taken. While the node is behind each send is taken with the
// probability of the share; the wait is spread over [base, 2·base) so
// refused clients do not all come back in the same instant.
func (a *admission) busy() time.Duration {
	g := a.gate.Load()
	if g >= gateAll || uint64(rand.Uint32()) < g {
		return 0
	}
	base := max(a.retry.Load(), 1)
	return time.Duration(base+rand.Int64N(base)) * time.Millisecond
}

// busyTurn is busy for a WebSocket send, whose connection keeps turn:
// when its last busy refusal's wait ends (unix ns, 0 for none). A send
// at or after that is taken however few sends the node takes, once;
// one before it is refused again and moves the turn to its new wait's
// end. Without turns a resend was refused as often as a new send, and
// answering the same messages again and again was much of the node's
// work past capacity: one node on the Redis path at 10000 × 10000
// answered 2.5–5.1 refusals per acked send (p99 1.16–1.70 s); with
// turns 1.1–3.0 (p99 0.76–1.38 s) when that stage ran alone
// (docs/BENCHMARKS.md, "Session 32", with the variants tried). A wait
// told is whole milliseconds and a client counts it from when the
// refusal reaches it, so one that waits as told is never early.
func (a *admission) busyTurn(turn *int64, now time.Time) time.Duration {
	wait := a.busy()
	if wait > 0 && (*turn == 0 || now.UnixNano() < *turn) {
		*turn = now.Add(wait).UnixNano()
		return wait
	}
	*turn = 0
	return 0
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
