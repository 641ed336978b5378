package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// A connection storm (-storm): every user of a stage dials at once, into
// rooms no connection of the node is in yet, so every room's first member
// makes the node subscribe it. The figure is connect-to-live: from a
// connection's "ready" until it receives its room's messages. Probes are
// sent over REST (POST /api/rooms/{id}/messages, as the room's creator),
// so no WebSocket holds a room live before the storm: each room gets one
// every -storm-probe until all its members received one. A member went
// live no later than the first probe it received was published, which is
// before both the probe's REST answer and its arrival: the earlier of the
// two, less the member's ready, is its connect-to-live, an upper bound
// finer than the probe period.

// stormState is a storm stage's probes and who is live.
type stormState struct {
	// ackAt is when each probe's REST answer came (unix ns), by cid.
	ackAt sync.Map
	// ready and live count each room's members that got their ready and
	// that received a probe.
	ready, live map[*room]*atomic.Int32
	probes      atomic.Int64
	// probeErrs counts probes refused or failed; skipped counts probes
	// due while the previous ones of the round had not gone out yet.
	probeErrs, skipped atomic.Int64
}

// stormResult is what a storm stage measured.
type stormResult struct {
	Stage       int     `json:"stage"`
	Connections int     `json:"connections"`
	Rooms       int     `json:"rooms"`
	RoomSize    int     `json:"room_size"`
	ProbeMS     float64 `json:"probe_ms"`
	// DialS is from the first dial until the last connection's ready.
	DialS float64 `json:"dial_seconds"`
	// Live is connect-to-live (ms) of the connections that went live.
	Live latencySummary `json:"connect_to_live_ms"`
	// Answered is from ready until the answer to a ping sent right after
	// it: when the node reads the connection's frames.
	Answered  latencySummary   `json:"ready_to_answer_ms"`
	OverLimit int64            `json:"over_limit"`
	LimitMS   float64          `json:"limit_ms"`
	NeverLive int64            `json:"never_live"`
	Probes    int64            `json:"probes"`
	ProbeErrs int64            `json:"probe_errors"`
	Skipped   int64            `json:"probes_skipped"`
	Errors    map[string]int64 `json:"errors"`
	Procs     []procResult     `json:"procs,omitempty"`
	LoadgenS  float64          `json:"loadgen_cpu_seconds"`
	Host      hostUsage        `json:"host"`
	Failure   string           `json:"failure,omitempty"`
	Pass      bool             `json:"pass"`
}

// runStorm runs one storm stage: users and rooms, then every WebSocket
// dialled at once while the probes run.
func (lg *loadgen) runStorm(ctx context.Context, n int, spec stageSpec) *stormResult {
	o := lg.o
	res := &stormResult{Stage: n, Connections: spec.users, RoomSize: o.roomSize,
		ProbeMS: ms(o.stormProbe), LimitMS: ms(o.stormLimit), Errors: map[string]int64{}}
	fail := func(format string, args ...any) *stormResult {
		res.Failure = fmt.Sprintf(format, args...)
		logf("storm %d: %s", n, res.Failure)
		return res
	}
	accts, err := lg.tgt.accounts(ctx, spec.users)
	if err != nil {
		return fail("set up users: %v", err)
	}
	st := newStage(ctx, lg, n, spec, accts, nil)
	defer st.closeAll()
	res.Rooms = len(st.rooms)
	if err := lg.tgt.createRooms(ctx, st); err != nil {
		return fail("create rooms: %v", err)
	}
	ss := &stormState{ready: make(map[*room]*atomic.Int32, len(st.rooms)), live: make(map[*room]*atomic.Int32, len(st.rooms))}
	for _, r := range st.rooms {
		ss.ready[r], ss.live[r] = new(atomic.Int32), new(atomic.Int32)
	}
	st.storm = ss
	// A room's first message is slower (the node restores its seq counter
	// from the store): one probe each before the storm, unmeasured.
	if err := lg.warmProbes(ctx, st); err != nil {
		return fail("first probes: %v", err)
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		lg.probe(probeCtx, st)
	}()
	watch := startProcWatch(o.pids)
	logf("storm %d: dialling %d WebSockets at once into %d rooms", n, spec.users, len(st.rooms))
	start := time.Now()
	dialErr := lg.dialAll(ctx, st, spec.users)
	res.DialS = round2(time.Since(start).Seconds())
	// Wait for the stragglers, then stop probing.
	deadline := time.Now().Add(o.stormLimit + 10*time.Second)
	for !st.allLive() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	stopProbes()
	<-probesDone
	st.closeAll()
	res.Procs, res.LoadgenS = watch.finish(0)
	res.Host = watch.host(res.Procs, res.LoadgenS)
	res.LoadgenS = round2(res.LoadgenS)
	for i := range res.Procs {
		res.Procs[i].CPUSeconds = round2(res.Procs[i].CPUSeconds)
	}
	lat, answered := newHistogram(), newHistogram()
	for _, c := range st.clients {
		if c.readyAt == 0 {
			continue // never connected: counted in the errors
		}
		if c.pongAt != 0 {
			answered.record(c.pongAt - c.readyAt)
		}
		if c.firstRecv == 0 {
			res.NeverLive++
			continue
		}
		at := c.firstRecv
		if v, ok := ss.ackAt.Load(c.firstCID); ok {
			at = min(at, v.(int64))
		}
		d := max(0, at-c.readyAt)
		lat.record(d)
		if time.Duration(d) > o.stormLimit {
			res.OverLimit++
		}
	}
	res.Live, res.Answered = lat.summary(), answered.summary()
	res.Probes, res.ProbeErrs, res.Skipped = ss.probes.Load(), ss.probeErrs.Load(), ss.skipped.Load()
	res.Errors = st.errs.snapshot()
	if dialErr != nil {
		res.Failure = dialErr.Error()
	}
	res.Pass = res.Failure == "" && res.NeverLive == 0 && res.OverLimit == 0 && res.Live.Count == int64(spec.users)
	return res
}

// allLive reports whether every connected member received a probe.
func (st *stage) allLive() bool {
	for _, r := range st.rooms {
		if int(st.storm.live[r].Load()) < len(r.members) {
			return false
		}
	}
	return true
}

// warmProbes sends every room its first message over REST.
func (lg *loadgen) warmProbes(ctx context.Context, st *stage) error {
	_, err := parallel(ctx, len(st.rooms), lg.o.setupConc, func(i int) error {
		return withRetry(ctx, func() error { return lg.sendProbe(ctx, st.storm, st.rooms[i], 0) })
	})
	return err
}

// sendProbe posts a generator message into r as its creator, once, and
// notes when the answer came, by cid.
func (lg *loadgen) sendProbe(ctx context.Context, ss *stormState, r *room, n uint64) error {
	now := time.Now().UnixNano()
	cid := appendCID(nil, now, n)
	body := appendBody(nil, now, cid, nil, 0)
	err := lg.do(ctx, http.MethodPost, "/api/rooms/"+strconv.FormatInt(r.id, 10)+"/messages", r.members[0].acct.token,
		map[string]string{"cid": string(cid), "body": string(body)}, nil)
	if err == nil {
		ss.ackAt.Store(string(cid), time.Now().UnixNano())
	}
	return err
}

// probe sends one message each -storm-probe into every room with a member
// that is ready but not live yet, over REST as the room's creator, on
// -setup-concurrency workers; a round still going out when the next is
// due skips the rooms not yet reached. A probe that fails (a node behind
// refuses sends as busy) is counted and not retried: its room gets the
// next round's, where a retry after a pause would hold a worker and make
// the rounds skip rooms whose members may long be live.
func (lg *loadgen) probe(ctx context.Context, st *stage) {
	ss := st.storm
	jobs := make(chan *room, len(st.rooms))
	var wg sync.WaitGroup
	var seq atomic.Uint64
	for range lg.o.setupConc {
		wg.Go(func() {
			for r := range jobs {
				if err := lg.sendProbe(ctx, ss, r, seq.Add(1)); err != nil {
					if ctx.Err() == nil {
						ss.probeErrs.Add(1)
						st.logOnce("probe", "storm probe into room %d: %v", r.id, err)
					}
					continue
				}
				ss.probes.Add(1)
			}
		})
	}
	t := time.NewTicker(lg.o.stormProbe)
	defer t.Stop()
	for {
		for _, r := range st.rooms {
			if ss.live[r].Load() >= ss.ready[r].Load() {
				continue
			}
			select {
			case jobs <- r:
			default:
				ss.skipped.Add(1)
			}
		}
		select {
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

// stormDelivered notes c's first probe; its reader calls it.
func (c *client) stormDelivered(cid []byte, now int64) {
	if c.firstRecv != 0 || cid == nil {
		return
	}
	c.firstRecv, c.firstCID = now, string(cid)
	c.st.storm.live[c.room].Add(1)
}

func (r *stormResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n== storm %d: %d connections at once, %d rooms of %d, a probe per room every %gms ==\n",
		r.Stage, r.Connections, r.Rooms, r.RoomSize, r.ProbeMS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Failure != "" {
		fmt.Fprintf(tw, "failure\t%s\n", r.Failure)
	}
	fmt.Fprintf(tw, "dial\tall ready %.2fs after the first dial%s\n", r.DialS, formatErrors(r.Errors))
	fmt.Fprintf(tw, "connect-to-live\t%s\n", r.Live)
	fmt.Fprintf(tw, "ready to a ping's answer\t%s\n", r.Answered)
	fmt.Fprintf(tw, "not live within %gms\t%d (never live: %d)\n", r.LimitMS, r.OverLimit, r.NeverLive)
	fmt.Fprintf(tw, "probes\t%d sent, %d failed, %d skipped (a round still going out)\n", r.Probes, r.ProbeErrs, r.Skipped)
	for _, p := range r.Procs {
		fmt.Fprintf(tw, "pid %d (%s)\tCPU %.2fs, peak RSS %d MiB\n", p.PID, p.Name, p.CPUSeconds, p.PeakRSSKiB/1024)
	}
	fmt.Fprintf(tw, "loadgen CPU\t%.2fs\n", r.LoadgenS)
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(tw, "verdict\t%s (every connection live within %gms of its ready)\n", verdict, r.LimitMS)
	_ = tw.Flush()
}

func (r *stormResult) jsonLine() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// runStorms runs a storm per stage and prints their tables and JSON
// lines; the exit code is 0 when every storm passed.
func (lg *loadgen) runStorms(ctx context.Context) int {
	var results []*stormResult
	for i, spec := range lg.o.stages {
		if ctx.Err() != nil {
			break
		}
		results = append(results, lg.runStorm(ctx, i+1, spec))
	}
	pass := len(results) == len(lg.o.stages) && ctx.Err() == nil
	for _, r := range results {
		r.print(os.Stdout)
		pass = pass && r.Pass
	}
	fmt.Println()
	for _, r := range results {
		fmt.Println(r.jsonLine())
	}
	if !pass {
		return 1
	}
	return 0
}
