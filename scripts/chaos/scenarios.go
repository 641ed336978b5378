package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// scenario is one fault; newRun makes its per-run state.
type scenario struct {
	name, title string
	cluster     bool // runs on its own Redis Cluster with replicas
	newRun      func() scenarioRun
}

// scenarioRun is one scenario's steps around the load.
type scenarioRun interface {
	// prepare runs once the nodes are up, before loadgen; it returns
	// extra loadgen flags.
	prepare(ctx context.Context, b *bed) ([]string, error)
	// fault breaks something while loadgen's fault window is open and
	// returns when the window should close.
	fault(ctx context.Context, b *bed, rep *report) error
	// after checks the scenario's own promises once loadgen finished.
	after(ctx context.Context, b *bed, lg *lgResult, rep *report)
	cleanup()
}

var scenarios = []*scenario{
	{"node-kill", "kill -9 one of three Moim nodes", false, func() scenarioRun { return &nodeKill{} }},
	{"store-restart", "kill -9 the MongoDB-wire store (FerretDB) and start it again", false, func() scenarioRun { return &storeRestart{} }},
	{"redis-failover", "kill -9 one Redis Cluster master; its replica takes over", true, func() scenarioRun { return &redisFailover{} }},
	{"storm", "a slow consumer and 1000 connections reconnecting at once", false, func() scenarioRun { return &storm{} }},
}

func scenarioNames() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.name
	}
	return out
}

func scenarioByName(name string) *scenario {
	for _, s := range scenarios {
		if s.name == name {
			return s
		}
	}
	return nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// poll calls f every interval until it reports done, or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		done, err := f()
		if done {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("not done after %s: %w", timeout, last)
			}
			return fmt.Errorf("not done after %s", timeout)
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return err
		}
	}
}

func secs(d time.Duration) float64 { return float64(d.Round(10*time.Millisecond)) / 1e9 }

// nodeKill kills the third node, preferably while its batcher holds
// entries it read but has not stored, so the others must claim them.
type nodeKill struct {
	victim *moimNode
}

func (s *nodeKill) prepare(context.Context, *bed) ([]string, error) { return nil, nil }
func (s *nodeKill) cleanup()                                        {}

func (s *nodeKill) fault(ctx context.Context, b *bed, rep *report) error {
	s.victim = b.nodes[len(b.nodes)-1]
	// Its batcher reads a batch every ~100 ms and holds it while writing:
	// wait (up to 3 s) for a moment it holds one.
	_ = poll(ctx, 3*time.Second, time.Millisecond, func() (bool, error) {
		n, err := b.pending(ctx, s.victim.id)
		return n > 0, err
	})
	s.victim.p.kill()
	killed := time.Now()
	left, err := b.pending(ctx, s.victim.id)
	if err != nil {
		return fmt.Errorf("pending entries of %s: %w", s.victim.id, err)
	}
	rep.Fault["killed"] = s.victim.id
	rep.Fault["pending_entries_at_kill"] = left
	// The others claim them once idle for MOIM_CLAIM_IDLE.
	err = poll(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		n, err := b.pending(ctx, s.victim.id)
		return n == 0, err
	})
	if err != nil {
		return fmt.Errorf("%s's pending entries never claimed: %w", s.victim.id, err)
	}
	rep.Fault["claimed_after_s"] = secs(time.Since(killed))
	// Keep the window open while its clients reconnect and sync.
	return sleepCtx(ctx, time.Until(killed.Add(5*time.Second)))
}

func (s *nodeKill) after(ctx context.Context, b *bed, lg *lgResult, rep *report) {
	left, err := b.pending(ctx, s.victim.id)
	rep.check("dead node's entries claimed", err == nil && left == 0, "%d left pending under %s (%v)", left, s.victim.id, err)
	// A third of the users were on the dead node.
	want := int64(b.o.users / len(b.nodes))
	rep.check("its clients reconnected", rep.Reconnects >= want, "%d reconnects, %d users were on %s", rep.Reconnects, want, s.victim.id)
}

// storeRestart kills FerretDB, keeps it down 5 s, starts it again on the
// same address and data, and waits for the backlog to drain.
type storeRestart struct {
	maxBacklog, baseline int64
	drained              bool
}

func (s *storeRestart) prepare(context.Context, *bed) ([]string, error) { return nil, nil }
func (s *storeRestart) cleanup()                                        {}

const storeDown = 5 * time.Second

func (s *storeRestart) fault(ctx context.Context, b *bed, rep *report) error {
	// The normal backlog: what the batchers hold between writes.
	for range 8 {
		n, err := b.backlog(ctx)
		if err != nil {
			return err
		}
		s.baseline = max(s.baseline, n)
		_ = sleepCtx(ctx, 250*time.Millisecond)
	}
	b.ferret.kill()
	down := time.Now()
	sample := func() (int64, error) {
		n, err := b.backlog(ctx)
		s.maxBacklog = max(s.maxBacklog, n)
		return n, err
	}
	for time.Since(down) < storeDown {
		if _, err := sample(); err != nil {
			return err
		}
		_ = sleepCtx(ctx, 250*time.Millisecond)
	}
	if err := b.startFerret(); err != nil {
		return fmt.Errorf("restart the store: %w", err)
	}
	up := time.Now()
	atRestart, _ := sample()
	rep.Fault["store_down_s"] = secs(up.Sub(down))
	rep.Fault["backlog_before"] = s.baseline
	rep.Fault["backlog_at_restart"] = atRestart
	// Drained: back to the normal level (the batchers always hold a little).
	err := poll(ctx, 60*time.Second, 250*time.Millisecond, func() (bool, error) {
		n, err := sample()
		return err == nil && n <= max(s.baseline, 50), err
	})
	rep.Fault["backlog_max"] = s.maxBacklog
	if err != nil {
		return fmt.Errorf("backlog never drained: %w", err)
	}
	s.drained = true
	rep.Fault["drained_after_restart_s"] = secs(time.Since(up))
	return nil
}

func (s *storeRestart) after(_ context.Context, _ *bed, lg *lgResult, rep *report) {
	rep.check("backlog rose during the outage", s.maxBacklog > 2*s.baseline+50,
		"max %d, normally at most %d", s.maxBacklog, s.baseline)
	rep.check("backlog drained after the restart", s.drained, "drained=%v", s.drained)
}

// redisFailover kills one master of a 3+3 Redis Cluster and waits for
// its replica to be promoted.
type redisFailover struct {
	windowEnd time.Time
	start     time.Time
}

func (s *redisFailover) prepare(context.Context, *bed) ([]string, error) { return nil, nil }
func (s *redisFailover) cleanup()                                        {}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, flags string
	slots           bool
}

func clusterNodes(ctx context.Context, addr string) ([]clusterNode, string, error) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	out, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, "", err
	}
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return nil, "", err
	}
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		nodes = append(nodes, clusterNode{id: f[0], addr: addr, flags: f[2], slots: len(f) > 8})
	}
	return nodes, info, nil
}

func (s *redisFailover) fault(ctx context.Context, b *bed, rep *report) error {
	seeds := strings.Split(strings.TrimSuffix(strings.TrimPrefix(b.redisURL, "redis+cluster://"), "/"), ",")
	nodes, _, err := clusterNodes(ctx, seeds[0])
	if err != nil {
		return fmt.Errorf("cluster nodes: %w", err)
	}
	// The victim: a master with slots that is not the seed we watch from.
	var victim clusterNode
	for _, n := range nodes {
		if strings.Contains(n.flags, "master") && n.slots && n.addr != seeds[0] {
			victim = n
			break
		}
	}
	if victim.id == "" {
		return errors.New("no master with slots to kill")
	}
	_, port, _ := strings.Cut(victim.addr, ":")
	raw, err := os.ReadFile(filepath.Join(b.cluster, port, "redis.pid"))
	if err != nil {
		return fmt.Errorf("victim's pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("victim's pid file: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill redis master %s (pid %d): %w", victim.addr, pid, err)
	}
	killed := time.Now()
	rep.Fault["killed_master"] = victim.addr
	// Failed over: the victim is marked failed and the cluster is whole.
	err = poll(ctx, 60*time.Second, 100*time.Millisecond, func() (bool, error) {
		nodes, info, err := clusterNodes(ctx, seeds[0])
		if err != nil {
			return false, err
		}
		for _, n := range nodes {
			if n.id == victim.id && strings.Contains(n.flags, "fail") && !strings.Contains(n.flags, "fail?") {
				return strings.Contains(info, "cluster_state:ok"), nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("no failover: %w", err)
	}
	rep.Fault["failover_s"] = secs(time.Since(killed))
	// Keep the window open a little: nodes resubscribe, clients resend.
	err = sleepCtx(ctx, 3*time.Second)
	s.windowEnd = time.Now()
	return err
}

func (s *redisFailover) after(_ context.Context, _ *bed, lg *lgResult, rep *report) {
	rep.Fault["unavailable"] = lg.Errors["unavailable"]
	// Acks in the timeline after the window (and a second of grace).
	var after int64
	if lg.Fault != nil {
		for _, p := range lg.Timeline {
			if p.T > lg.Fault.EndS+1 {
				after += p.Acked
			}
		}
	}
	rep.Fault["acked_after_recovery"] = after
	rep.check("traffic resumed without restarting Moim", after > 0, "%d acks after the fault window", after)
}
