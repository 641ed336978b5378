package main

import (
	"context"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// procs runs the node's Go code on one processor (GOMAXPROCS 1) while the
// node uses little CPU, and on all of them once it uses more. With a
// second processor idle most of the time, every goroutine made ready (a
// socket readable, a Redis reply, a pub/sub message) woke a thread to run
// it there: a futex wake, a spin looking for more work, a futex sleep.
// At 1,000 messages a second on Redis that was a fifth of the node's CPU
// (docs/BENCHMARKS.md, "Session 35"); past about one core of work, one
// processor would cap the node, so it takes them all back.
type procs struct {
	// max is the processors the node takes when busy: GOMAXPROCS at start.
	max int
	// under is the CPU use, in cores, past which the node leaves one
	// processor (measured over one tick, so a burst gets the cores within
	// a tick); it goes back to one when the last second's mean on all of
	// them is under lowerShare of it. The gap keeps it from swinging: the
	// same work costs more on all processors, whose wakes it is that one
	// processor saves.
	under float64
	// cpu is the process's CPU time so far; ok false where the platform
	// cannot say (the tuner then stays off).
	cpu func() (time.Duration, bool)
	// waits counts, since start, the goroutine runs that waited longer
	// than slowWait for a processor, and all runs (runtimeWaits outside
	// tests). On one processor, many slow waits say the node needs more
	// even though its CPU use is low: a host busy with other work
	// deschedules its one thread, and everything in the node waits.
	waits func() (slow, all uint64)
	// set changes GOMAXPROCS (runtime.GOMAXPROCS outside tests).
	set func(n int)

	n      int       // processors now
	since  int       // ticks since n last changed
	hold   int       // ticks on all processors before one is tried again
	recent []reading // the last procsWindow ticks since n last changed
	prev   reading   // the cumulative readings at the last tick
	prevAt time.Time

	gauge   prometheus.Gauge
	changes *prometheus.CounterVec
}

// reading is one tick's CPU use (cores) and goroutine runs, or, in
// procs.prev, the cumulative counts.
type reading struct {
	cpu       time.Duration
	use       float64
	slow, all uint64
}

// procsTick is how often the tuner reads the node's CPU use: a burst
// runs on one processor for at most about this long.
const procsTick = 100 * time.Millisecond

// procsWindow is how many ticks on all processors the tuner averages
// before it goes back to one: a second, so a lull between bursts does not
// take the cores away. It is also the window of the waits on one.
const procsWindow = 10

// lowerShare of under is the mean use on all processors under which the
// tuner goes back to one.
const lowerShare = 0.75

// slowWait, slowShare, slowRuns: on one processor, when more than
// slowShare of the last second's goroutine runs (at least slowRuns of
// them) waited longer than slowWait to start, the node takes every
// processor back whatever its CPU use. A node alone at 1,000 msg/s on one
// processor had 0–4 % of a tick's runs wait that long; three nodes on
// two cores, 4–33 % (docs/BENCHMARKS.md, "Session 35").
const (
	slowWait  = time.Millisecond
	slowShare = 0.05
	slowRuns  = 100
)

// shortStint and maxHold: a stint on one processor that ends within
// shortStint ticks doubles the hold before the next (up to maxHold), so
// a node that one processor does not suit stops trying it every second.
const (
	shortStint = 100
	maxHold    = 600
)

// newProcs returns a tuner between one processor and max, or nil when
// there is nothing to tune (one processor, or under ≤ 0: off).
func newProcs(max int, under float64, cpu func() (time.Duration, bool), waits func() (uint64, uint64), set func(int), reg prometheus.Registerer) *procs {
	if max < 2 || under <= 0 {
		return nil
	}
	if _, ok := cpu(); !ok {
		return nil
	}
	p := &procs{
		max: max, under: under, cpu: cpu, waits: waits, set: set, n: max, hold: procsWindow,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "moim_node_procs",
			Help: "Processors (GOMAXPROCS) the node runs its Go code on now: one while it uses less than MOIM_ONE_PROC_UNDER cores, else all.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moim_node_procs_changes_total",
			Help: "Times the node went to one processor (to=one) or back to all (to=all).",
		}, []string{"to"}),
	}
	p.gauge.Set(float64(max))
	reg.MustRegister(p.gauge, p.changes)
	return p
}

// run tunes until ctx ends, then gives back every processor.
func (p *procs) run(ctx context.Context) {
	t := time.NewTicker(procsTick)
	defer t.Stop()
	p.start(time.Now())
	for {
		select {
		case <-ctx.Done():
			if p.n != p.max {
				p.to(p.max, "all")
			}
			return
		case now := <-t.C:
			p.tick(now)
		}
	}
}

// start takes the readings the first tick counts from.
func (p *procs) start(now time.Time) {
	p.prev.cpu, _ = p.cpu()
	p.prev.slow, p.prev.all = p.waits()
	p.prevAt = now
}

// tick reads the CPU used and the waits since the last tick and changes
// processors if they say so.
func (p *procs) tick(now time.Time) {
	c, ok := p.cpu()
	wall := now.Sub(p.prevAt)
	if !ok || wall <= 0 {
		return
	}
	slow, all := p.waits()
	r := reading{use: float64(c-p.prev.cpu) / float64(wall), slow: slow - p.prev.slow, all: all - p.prev.all}
	p.prev, p.prevAt = reading{cpu: c, slow: slow, all: all}, now
	p.since++
	p.recent = append(p.recent, r)
	if len(p.recent) > procsWindow {
		p.recent = p.recent[1:]
	}
	var sum reading
	for _, x := range p.recent {
		sum.use += x.use
		sum.slow += x.slow
		sum.all += x.all
	}
	if p.n == 1 {
		if r.use > p.under || sum.all >= slowRuns && float64(sum.slow) > slowShare*float64(sum.all) {
			if p.since < shortStint {
				p.hold = min(2*p.hold, maxHold)
			} else {
				p.hold = procsWindow
			}
			p.to(p.max, "all")
		}
		return
	}
	if p.since >= p.hold && len(p.recent) == procsWindow && sum.use/procsWindow < lowerShare*p.under {
		p.to(1, "one")
	}
}

// to sets n processors; the readings start again.
func (p *procs) to(n int, label string) {
	p.set(n)
	p.n, p.since, p.recent = n, 0, p.recent[:0]
	p.gauge.Set(float64(n))
	p.changes.WithLabelValues(label).Inc()
}

// setProcs is procs.set outside tests.
func setProcs(n int) { runtime.GOMAXPROCS(n) }

// runtimeWaits is procs.waits outside tests: the runtime's histogram of
// how long runnable goroutines waited to run.
func runtimeWaits() (slow, all uint64) {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0, 0
	}
	h := s[0].Value.Float64Histogram()
	for i, n := range h.Counts {
		all += n
		if h.Buckets[i] >= slowWait.Seconds() {
			slow += n
		}
	}
	return slow, all
}
