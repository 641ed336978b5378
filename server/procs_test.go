package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"moim/internal/testkit"
)

// sampled is a gauge's or a counter's value.
func sampled(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// fakeCPU is a process whose CPU use and goroutine waits each tick the
// test chooses.
type fakeCPU struct {
	used      time.Duration
	slow, all uint64
	at        time.Time
}

func (f *fakeCPU) read() (time.Duration, bool) { return f.used, true }
func (f *fakeCPU) waits() (uint64, uint64)     { return f.slow, f.all }

// spend advances the clock one tick during which the process used use
// cores and ran 100 goroutines, slow of which waited long to start; it
// returns the tick's time.
func (f *fakeCPU) spend(use float64, slow uint64) time.Time {
	f.used += time.Duration(use * float64(procsTick))
	f.slow += slow
	f.all += 100
	f.at = f.at.Add(procsTick)
	return f.at
}

func newTestProcs(t *testing.T, max int, under float64) (*procs, *fakeCPU, *[]int) {
	t.Helper()
	cpu := &fakeCPU{at: time.Unix(1_700_000_000, 0)}
	var sets []int
	p := newProcs(max, under, cpu.read, cpu.waits, func(n int) { sets = append(sets, n) }, prometheus.NewRegistry())
	if p == nil {
		t.Fatal("newProcs: nil for a tuner that has something to tune")
	}
	p.start(cpu.at)
	return p, cpu, &sets
}

// ticks runs n ticks of the same use and slow waits.
func ticks(p *procs, cpu *fakeCPU, n int, use float64, slow uint64) {
	for i := 0; i < n; i++ {
		p.tick(cpu.spend(use, slow))
	}
}

// TestProcsOneWhileQuietAllWhenBusy: a node using little CPU goes to one
// processor once a whole second says so (not on one quiet tick), goes
// back to all on the first tick past the limit, and stays on all while
// bursts keep the second's mean up.
func TestProcsOneWhileQuietAllWhenBusy(t *testing.T) {
	p, cpu, sets := newTestProcs(t, 4, 0.8)
	ticks(p, cpu, procsWindow-1, 0.5, 0)
	if len(*sets) != 0 {
		t.Fatalf("went to %v before a second of quiet", *sets)
	}
	ticks(p, cpu, 1, 0.5, 0)
	if got := *sets; len(got) != 1 || got[0] != 1 {
		t.Fatalf("after a second at 0.5 cores (under 0.75 × 0.8): sets %v, want [1]", got)
	}
	if v := sampled(t, p.gauge); v != 1 {
		t.Fatalf("moim_node_procs %v on one processor", v)
	}

	ticks(p, cpu, 3*procsWindow, 0.75, 4)
	if len(*sets) != 1 {
		t.Fatalf("left one processor at 0.75 cores, under the 0.8 limit, with 4 %% of runs slow: %v", *sets)
	}
	ticks(p, cpu, 1, 0.9, 0)
	if got := *sets; len(got) != 2 || got[1] != 4 {
		t.Fatalf("a tick at 0.9 cores on one processor: sets %v, want all 4 back", got)
	}

	// Bursts and lulls whose mean stays over 0.6 keep every processor;
	// the readings start afresh on all of them, so old quiet ticks don't
	// count.
	for i := 0; i < 3*procsWindow; i++ {
		use := 0.3
		if i%2 == 1 {
			use = 1.0
		}
		ticks(p, cpu, 1, use, 0)
	}
	if len(*sets) != 2 {
		t.Fatalf("went back to one with a second's mean of 0.65 cores: %v", *sets)
	}
	if got := sampled(t, p.changes.WithLabelValues("one")) + sampled(t, p.changes.WithLabelValues("all")); got != 2 {
		t.Fatalf("moim_node_procs_changes_total %v, want 2", got)
	}
}

// TestProcsAllWhenGoroutinesWaitOnOne: on a host busy with other work,
// a node using little CPU takes every processor back once more than 5 %
// of a second's goroutine runs waited long to start, and after stints on
// one processor that end that way it waits longer and longer before it
// tries one again.
func TestProcsAllWhenGoroutinesWaitOnOne(t *testing.T) {
	p, cpu, sets := newTestProcs(t, 2, 0.8)
	ticks(p, cpu, procsWindow, 0.3, 0)
	if got := *sets; len(got) != 1 || got[0] != 1 {
		t.Fatalf("a quiet second: sets %v, want [1]", got)
	}
	ticks(p, cpu, 1, 0.3, 30)
	if got := *sets; len(got) != 2 || got[1] != 2 {
		t.Fatalf("30 %% of a tick's runs slow on one processor: sets %v, want both back", got)
	}

	// Each short stint doubles the time on all processors before the next.
	for _, hold := range []int{2 * procsWindow, 4 * procsWindow, 8 * procsWindow} {
		before := len(*sets)
		ticks(p, cpu, hold-1, 0.3, 0)
		if len(*sets) != before {
			t.Fatalf("tried one processor again after %d ticks, want %d", hold-1, hold)
		}
		ticks(p, cpu, 1, 0.3, 0)
		if len(*sets) != before+1 || (*sets)[before] != 1 {
			t.Fatalf("after %d quiet ticks on all: sets %v, want one processor", hold, *sets)
		}
		ticks(p, cpu, 1, 0.3, 30)
	}

	// A long stint resets the hold to a second.
	ticks(p, cpu, 3*procsWindow, 0.3, 0)
	before := len(*sets)
	ticks(p, cpu, 16*procsWindow, 0.3, 0)
	if len(*sets) != before+1 {
		t.Fatalf("a node quiet on all for 16 s never tried one processor: %v", *sets)
	}
	ticks(p, cpu, shortStint, 0.3, 0)
	ticks(p, cpu, 1, 0.3, 100)
	if len(*sets) != before+2 {
		t.Fatalf("a tick of slow runs in a quiet second (10 %% of its runs): sets %v, want all back", *sets)
	}
	before = len(*sets)
	ticks(p, cpu, procsWindow, 0.3, 0)
	if len(*sets) != before+1 {
		t.Fatalf("after a stint of %d ticks on one processor the hold is still long: %v", shortStint, *sets)
	}
}

// TestProcsOffWhenNothingToTune: one processor, the setting off, or a
// platform without the process's CPU time leave GOMAXPROCS alone.
func TestProcsOffWhenNothingToTune(t *testing.T) {
	known := func() (time.Duration, bool) { return 0, true }
	unknown := func() (time.Duration, bool) { return 0, false }
	none := func() (uint64, uint64) { return 0, 0 }
	set := func(int) { t.Fatal("set called") }
	for _, tc := range []struct {
		name  string
		max   int
		under float64
		cpu   func() (time.Duration, bool)
	}{
		{"one processor", 1, 0.8, known},
		{"off", 4, 0, known},
		{"no CPU time", 4, 0.8, unknown},
	} {
		if p := newProcs(tc.max, tc.under, tc.cpu, none, set, prometheus.NewRegistry()); p != nil {
			t.Errorf("%s: a tuner", tc.name)
		}
	}
}

// TestProcsGivesEveryProcessorBackWhenStopped runs the tuner on the real
// clock with a quiet process: it goes to one, and when the node stops it
// is back on all.
func TestProcsGivesEveryProcessorBackWhenStopped(t *testing.T) {
	sets := make(chan int, 4)
	quiet := func() (time.Duration, bool) { return 0, true }
	p := newProcs(2, 0.8, quiet, runtimeWaits, func(n int) { sets <- n }, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.run(ctx); close(done) }()
	select {
	case n := <-sets:
		if n != 1 {
			t.Fatalf("a quiet node set %d processors, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a quiet node never went to one processor")
	}
	cancel()
	<-done
	if n := <-sets; n != 2 {
		t.Fatalf("stopping set %d processors, want 2", n)
	}
}

// TestProcessCPUCountsThisProcessesWork: the tuner's reading grows by the
// CPU a busy loop spends.
func TestProcessCPUCountsThisProcessesWork(t *testing.T) {
	start, ok := processCPU()
	if !ok {
		t.Fatal("no process CPU time on this platform")
	}
	deadline := time.Now().Add(10 * time.Second)
	x := 1
	for {
		for i := 0; i < 1_000_000; i++ {
			x = x*31 + i
		}
		now, _ := processCPU()
		if now-start >= 30*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time grew %v in 10 s of a busy loop", now-start)
		}
	}
	if x == 0 {
		t.Log(x)
	}
}

// TestANodeRunsOnOneProcessorWhileQuiet starts the node binary with
// nothing configured: once quiet it runs on one processor (its metrics
// say so), and when sign-ups hash passwords on every core it can get it
// takes them all back. On a one-core machine there is nothing to tune
// and the metric is not there.
func TestANodeRunsOnOneProcessorWhileQuiet(t *testing.T) {
	bin := testkit.BuildServer(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	env := append(zeroSetupEnv(dir, addr), "GOMAXPROCS=", "MOIM_SIGNUP_LIMIT=off", "MOIM_BCRYPT_COST=12")
	startProcess(t, bin, env, dir)
	base := "http://" + addr
	waitHealthy(t, base)
	n := &testNode{url: base}
	if runtime.NumCPU() < 2 {
		if n.metrics(t).Has("moim_node_procs") {
			t.Fatal("moim_node_procs on a one-core machine: nothing to tune")
		}
		return
	}
	waitMetric := func(name string, ok func(float64) bool, why string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, _ := n.metrics(t).Sample(name)
			if ok(v) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s is still %v after 30 s", why, name, v)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitMetric("moim_node_procs", func(v float64) bool { return v == 1 }, "a quiet node")

	// Sign-ups hash each password at cost 12 (a few hundred ms of CPU):
	// more of them at once than one core does.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2*runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"username":"busy%d_%d","password":"correct horse battery","display_name":"Busy"}`, w, i)
				resp, err := http.Post(base+"/api/auth/signup", "application/json", strings.NewReader(body))
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	waitMetric(`moim_node_procs_changes_total{to="all"}`, func(v float64) bool { return v >= 1 }, "hashing passwords on every core")
	close(stop)
	wg.Wait()
}
