package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Latency histogram: fixed buckets, 10 µs wide below 100 ms and 1 ms wide
// from 100 ms to 200 s, so every reported figure is exact to 1 ms (to
// 10 µs below 100 ms). Anything slower lands in one overflow bucket; the
// exact maximum is kept apart. Recording is a few atomic adds, safe from
// every reader goroutine at once.
const (
	fineWidth    = 10 * time.Microsecond
	fineLimit    = 100 * time.Millisecond
	coarseWidth  = time.Millisecond
	coarseLimit  = 200 * time.Second
	fineBuckets  = int(fineLimit / fineWidth)
	totalBuckets = fineBuckets + int((coarseLimit-fineLimit)/coarseWidth) + 1 // +1: overflow
)

type histogram struct {
	counts []uint64 // atomic
	n      atomic.Int64
	max    atomic.Int64 // nanoseconds
	neg    atomic.Int64 // samples below zero (clock steps), recorded as 0
}

func newHistogram() *histogram { return &histogram{counts: make([]uint64, totalBuckets)} }

func bucketOf(ns int64) int {
	d := time.Duration(ns)
	switch {
	case d < fineLimit:
		return int(d / fineWidth)
	case d < coarseLimit:
		return fineBuckets + int((d-fineLimit)/coarseWidth)
	}
	return totalBuckets - 1
}

// upperEdge is the largest value bucket i holds.
func upperEdge(i int) time.Duration {
	if i < fineBuckets {
		return time.Duration(i+1) * fineWidth
	}
	if i < totalBuckets-1 {
		return fineLimit + time.Duration(i-fineBuckets+1)*coarseWidth
	}
	return time.Duration(math.MaxInt64)
}

func (h *histogram) record(ns int64) {
	if ns < 0 {
		h.neg.Add(1)
		ns = 0
	}
	atomic.AddUint64(&h.counts[bucketOf(ns)], 1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

func (h *histogram) reset() {
	for i := range h.counts {
		atomic.StoreUint64(&h.counts[i], 0)
	}
	h.n.Store(0)
	h.max.Store(0)
	h.neg.Store(0)
}

// quantiles returns the value at each quantile (the upper edge of the
// bucket holding the ceil(q·n)-th sample, never above the maximum).
func (h *histogram) quantiles(qs ...float64) []time.Duration {
	out := make([]time.Duration, len(qs))
	var total uint64
	for i := range h.counts {
		total += atomic.LoadUint64(&h.counts[i])
	}
	if total == 0 {
		return out
	}
	maxV := time.Duration(h.max.Load())
	ranks := make([]uint64, len(qs))
	for i, q := range qs {
		ranks[i] = max(1, uint64(math.Ceil(q*float64(total))))
	}
	var cum uint64
	j := 0
	for i := range h.counts {
		cum += atomic.LoadUint64(&h.counts[i])
		for j < len(qs) && cum >= ranks[j] {
			out[j] = min(upperEdge(i), maxV)
			j++
		}
		if j == len(qs) {
			break
		}
	}
	return out
}

// latencySummary is a histogram's figures in milliseconds.
type latencySummary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func (h *histogram) summary() latencySummary {
	q := h.quantiles(0.50, 0.90, 0.99, 0.999)
	return latencySummary{
		Count: h.n.Load(),
		P50:   ms(q[0]), P90: ms(q[1]), P99: ms(q[2]), P999: ms(q[3]),
		Max: ms(time.Duration(h.max.Load())),
	}
}

func (s latencySummary) String() string {
	if s.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
		fmtMS(s.P50), fmtMS(s.P90), fmtMS(s.P99), fmtMS(s.P999), fmtMS(s.Max), s.Count)
}

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}

// errorCounts counts errors by code: the server's error codes plus the
// generator's own (write, conn_lost, closed_NNNN, no_ack, bad_frame).
type errorCounts struct {
	mu    sync.Mutex
	m     map[string]int64
	total atomic.Int64
}

func (e *errorCounts) add(code string) { e.addN(code, 1) }

func (e *errorCounts) addN(code string, n int64) {
	if code == "" {
		code = "unknown"
	}
	e.mu.Lock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	e.m[code] += n
	e.mu.Unlock()
	e.total.Add(n)
}

func (e *errorCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

// result is one stage's figures; it is also the stage's JSON line.
type result struct {
	Stage        int     `json:"stage"`
	Users        int     `json:"users"`
	RoomSize     int     `json:"room_size"`
	Rooms        int     `json:"rooms"`
	DurationS    float64 `json:"duration_s"`
	TargetRate   float64 `json:"target_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Behind       bool    `json:"behind"`
	// NotSent counts sends that were due but not written before the
	// sending window closed (the generator or the socket was behind).
	NotSent int64 `json:"not_sent"`
	Sent    int64 `json:"sent"`
	Acked   int64 `json:"acked"`
	// Expected is every acked message times its room's members: each
	// member's one connection, the sender's own included.
	Expected int64 `json:"expected_deliveries"`
	Received int64 `json:"received_deliveries"`
	Lost     int64 `json:"lost"`
	// LostDropped is the part of Lost owed to connections that ended
	// during the stage (conn_lost, closed_NNNN errors).
	LostDropped int64 `json:"lost_to_dropped_connections"`
	Duplicates  int64 `json:"duplicates"`
	// DuplicateMessages counts cids acked or delivered under two seqs:
	// one message stored twice (a resend must get its original seq).
	DuplicateMessages int64 `json:"duplicate_messages"`
	// OutOfOrder counts live msgs that arrived after a higher seq on the
	// same connection (frames during a sync are not judged).
	OutOfOrder int64 `json:"out_of_order"`
	// UnackedReceived counts deliveries of messages whose ack never came.
	UnackedReceived int64 `json:"unacked_received"`
	// Foreign counts msg frames for rooms outside this stage (ignored).
	Foreign     int64            `json:"foreign"`
	Errors      map[string]int64 `json:"errors"`
	ErrorsTotal int64            `json:"errors_total"`
	Latency     latencySummary   `json:"latency_ms"`
	AckLatency  latencySummary   `json:"ack_latency_ms"`
	// SocketLatency is Latency up to the generator's socket: from the
	// send to the kernel's receive time of the last packet read with the
	// message (Linux only). Latency less this is the generator's own wait
	// to read, which grows when it shares saturated cores with the server.
	SocketLatency *latencySummary   `json:"socket_latency_ms,omitempty"`
	Verdicts      map[string]string `json:"verdicts"`
	Pass          bool              `json:"pass"`
	Procs         []procResult      `json:"procs,omitempty"`
	// LoadgenCPUS is the generator's own CPU time over the same window.
	LoadgenCPUS float64        `json:"loadgen_cpu_seconds"`
	Host        hostUsage      `json:"host"`
	Warmup      *warmupResult  `json:"warmup,omitempty"`
	History     *historyResult `json:"history,omitempty"`
	Store       *storeResult   `json:"store,omitempty"`
	// Recovery is the reference client's work (-reconnect).
	Recovery *recoveryResult `json:"recovery,omitempty"`
	Fault    *faultResult    `json:"fault_window,omitempty"`
	// Push is the pushes and mentions (-push-subs, -push-away, -mentions).
	Push     *pushResult     `json:"push,omitempty"`
	Timeline []timelinePoint `json:"timeline,omitempty"`
	SetupS   float64         `json:"setup_seconds"`
	DrainS   float64         `json:"drain_seconds"`
	// DrainTimedOut says the drain ran out before every send was answered
	// and every acked message delivered: part of Lost may be in flight.
	DrainTimedOut bool   `json:"drain_timed_out,omitempty"`
	Failure       string `json:"failure,omitempty"`
}

// recoveryResult is what the reference clients did to recover.
type recoveryResult struct {
	Reconnects     int64 `json:"reconnects"`
	RedialFailures int64 `json:"redial_failures"`
	Refused        int64 `json:"refused_then_resent"`
	Busy           int64 `json:"busy"` // of the refusals, busy ones
	Resends        int64 `json:"resends"`
	Syncs          int64 `json:"syncs"`
	// Gaps counts gap frames the clients received and skipped.
	Gaps     int64 `json:"gaps"`
	LateAcks int64 `json:"late_acks"`
}

// expectedError reports whether, with -reconnect, an error code is part
// of a fault the clients recover from (a drop, a refusal they resend)
// rather than a failure.
func expectedError(code string) bool {
	return code == "unavailable" || code == "rate_limited" || code == "busy" || code == "conn_lost" || code == "write" ||
		strings.HasPrefix(code, "closed_")
}

func verdictKey(limit time.Duration) string { return fmt.Sprintf("%dms", limit.Milliseconds()) }

// judge fills the verdicts: PASS at a limit when p99 ≤ limit, nothing
// acked was lost, no error happened (and the history, when checked, is
// complete).
func (r *result) judge(limits []time.Duration) {
	r.Verdicts = map[string]string{}
	r.Pass = true
	errs := r.ErrorsTotal
	if r.Recovery != nil {
		for code, n := range r.Errors {
			if expectedError(code) {
				errs -= n
			}
		}
	}
	clean := r.Failure == "" && r.Lost == 0 && errs == 0 && r.Sent > 0 && r.DuplicateMessages == 0 && r.OutOfOrder == 0 &&
		(r.History == nil || r.History.Complete) && (r.Store == nil || r.Store.Complete)
	for _, l := range limits {
		v := "PASS"
		if !clean || r.Latency.Count == 0 || r.Latency.P99 > float64(l)/1e6 {
			v = "FAIL"
			r.Pass = false
		}
		r.Verdicts[verdictKey(l)] = v
	}
}

func (r *result) print(w io.Writer, limits []time.Duration) {
	fmt.Fprintf(w, "\n== stage %d: %d users, %d rooms of %d, %g msg/s for %gs ==\n",
		r.Stage, r.Users, r.Rooms, r.RoomSize, r.TargetRate, r.DurationS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Failure != "" {
		fmt.Fprintf(tw, "failure\t%s\n", r.Failure)
	}
	behind := ""
	if r.Behind {
		behind = fmt.Sprintf("   BEHIND: achieved %.0f/s of %g/s target (%d due sends not made)", r.AchievedRate, r.TargetRate, r.NotSent)
	}
	fmt.Fprintf(tw, "users\t%d (setup %.1fs)\n", r.Users, r.SetupS)
	if w := r.Warmup; w != nil {
		fmt.Fprintf(tw, "warm-up (not measured)\t%d of %d new rooms' first message acked in %.1fs, %d sends%s; first-message ack %s\n",
			w.Acked, w.Rooms, w.Seconds, w.Attempts, formatErrors(w.Errors), w.AckMS)
	}
	fmt.Fprintf(tw, "rate\ttarget %g/s, achieved %.1f/s%s\n", r.TargetRate, r.AchievedRate, behind)
	fmt.Fprintf(tw, "sent\t%d\n", r.Sent)
	fmt.Fprintf(tw, "acked\t%d\n", r.Acked)
	fmt.Fprintf(tw, "expected deliveries\t%d\n", r.Expected)
	fmt.Fprintf(tw, "received deliveries\t%d\n", r.Received)
	lost := ""
	if r.LostDropped > 0 {
		lost = fmt.Sprintf(" (%d of them to connections that ended during the stage)", r.LostDropped)
	}
	if r.DrainTimedOut && r.Lost > r.LostDropped {
		lost += " (the drain timed out: some may still have been in flight)"
	}
	fmt.Fprintf(tw, "lost\t%d%s\n", r.Lost, lost)
	fmt.Fprintf(tw, "duplicates\t%d\n", r.Duplicates)
	if r.DuplicateMessages > 0 || r.OutOfOrder > 0 || r.Recovery != nil {
		fmt.Fprintf(tw, "duplicate messages\t%d (client ids under two seqs)\n", r.DuplicateMessages)
		fmt.Fprintf(tw, "out of order\t%d (live messages after a higher seq)\n", r.OutOfOrder)
	}
	if v := r.Recovery; v != nil {
		fmt.Fprintf(tw, "recovery\t%d reconnects (%d failed redials), %d sends refused then resent (%d busy), %d resends, %d syncs, %d gaps skipped, %d late acks\n",
			v.Reconnects, v.RedialFailures, v.Refused, v.Busy, v.Resends, v.Syncs, v.Gaps, v.LateAcks)
	}
	if r.UnackedReceived > 0 || r.Foreign > 0 {
		fmt.Fprintf(tw, "other deliveries\t%d of unacked messages, %d for other rooms\n", r.UnackedReceived, r.Foreign)
	}
	fmt.Fprintf(tw, "errors\t%d%s\n", r.ErrorsTotal, formatErrors(r.Errors))
	fmt.Fprintf(tw, "latency (delivery)\t%s\n", r.Latency)
	if r.SocketLatency != nil {
		fmt.Fprintf(tw, "latency (at the socket)\t%s\n", r.SocketLatency)
	}
	fmt.Fprintf(tw, "latency (ack)\t%s\n", r.AckLatency)
	if f := r.Fault; f != nil {
		fmt.Fprintf(tw, "fault window\t%.1fs–%.1fs: %d sent, %d error frames; delivery %s\n", f.StartS, f.EndS, f.Sent, f.Errors, f.Latency)
	}
	if p := r.Push; p != nil {
		fmt.Fprintf(tw, "pushes\t%s\n", p)
	}
	if r.DrainTimedOut {
		fmt.Fprintf(tw, "drain\t%.1fs, timed out before every send was answered and every acked message delivered\n", r.DrainS)
	} else {
		fmt.Fprintf(tw, "drain\t%.1fs\n", r.DrainS)
	}
	for _, p := range r.Procs {
		if p.Err != "" {
			fmt.Fprintf(tw, "pid %d\t%s\n", p.PID, p.Err)
			continue
		}
		fmt.Fprintf(tw, "pid %d (%s)\tCPU %.2fs (%.0f%% of one core), %.1f CPU-ms per 1000 deliveries, peak RSS %.1f MiB\n",
			p.PID, p.Name, p.CPUSeconds, p.CPUPercent, p.CPUMsPer1000, float64(p.PeakRSSKiB)/1024)
	}
	fmt.Fprintf(tw, "loadgen CPU\t%.2fs\n", r.LoadgenCPUS)
	if h := r.Host; h.Cores > 0 {
		note := ""
		if len(r.Procs) > 0 && h.OtherCPUS > 0.1*r.DurationS {
			note = "  (other work shared the host: figures may be skewed)"
		}
		fmt.Fprintf(tw, "host CPU\t%.0f%% busy of %d cores, %.1f%% stolen by the hypervisor; %.1f core-seconds outside the generator and -pid processes%s\n", h.BusyPercent, h.Cores, h.StealPercent, h.OtherCPUS, note)
	}
	if h := r.History; h != nil {
		switch {
		case h.Error != "":
			fmt.Fprintf(tw, "history\tINCOMPLETE: %s (%d of %d acked seqs found)\n", h.Error, h.Found, h.Checked)
		case h.Complete:
			fmt.Fprintf(tw, "history\tcomplete: %d acked seqs found %.0f ms after the drain (%.0f ms after sending stopped), %d requests\n",
				h.Checked, h.AfterDrainMS, h.AfterSendMS, h.Requests)
		default:
			fmt.Fprintf(tw, "history\tINCOMPLETE after %.0f ms: %d of %d acked seqs found (%d rooms incomplete)\n",
				h.AfterDrainMS, h.Found, h.Checked, h.RoomsMissing)
		}
	}
	if s := r.Store; s != nil {
		fmt.Fprintf(tw, "store\t%s\n", s)
	}
	for _, l := range limits {
		fmt.Fprintf(tw, "verdict p99 ≤ %s\t%s\n", l, r.Verdicts[verdictKey(l)])
	}
	tw.Flush()
}

func formatErrors(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func (r *result) jsonLine() string {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Sprintf(`{"stage":%d,"failure":%q}`, r.Stage, err.Error())
	}
	return string(b)
}
