package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// phase is one measured operation: how many, how fast, what it cost.
type phase struct {
	Name       string
	Ops        int
	Msgs       int64 // inserted or returned
	Seconds    float64
	P50ms      float64
	P99ms      float64
	ServerCPU  float64 // -1: not measured
	BenchCPU   float64
	Load1      float64
	Wrong      int
	FirstWrong string
}

// OpsPerSec and MsgsPerSec are the phase's throughput.
func (p phase) OpsPerSec() float64  { return float64(p.Ops) / p.Seconds }
func (p phase) MsgsPerSec() float64 { return float64(p.Msgs) / p.Seconds }

// cpuMeter reads the CPU time of the database server (when it is a
// process on this host) and of this process.
type cpuMeter struct {
	serverPID int // 0: not measured
}

func (m cpuMeter) read() (server, self float64) {
	server = -1
	if m.serverPID > 0 {
		if t, err := treeCPU(m.serverPID); err == nil {
			server = t
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return server, self
}

// treeCPU is the CPU seconds of pid and its live descendants, plus what
// pid's reaped children used (PostgreSQL forks a process per connection;
// MariaDB is one process).
func treeCPU(pid int) (float64, error) {
	stats, err := allStats()
	if err != nil {
		return 0, err
	}
	root, ok := stats[pid]
	if !ok {
		return 0, fmt.Errorf("process %d is gone", pid)
	}
	ticks := root.ticks + root.childTicks
	children := map[int][]int{}
	for p, s := range stats {
		children[s.ppid] = append(children[s.ppid], p)
	}
	queue := slices.Clone(children[pid])
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		ticks += stats[p].ticks
		queue = append(queue, children[p]...)
	}
	return float64(ticks) / clockTicks, nil
}

type procStat struct {
	ppid              int
	ticks, childTicks int64
}

func allStats() (map[int]procStat, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	out := map[int]procStat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// Fields are counted after the command name's last ')': ppid is
		// field 4, utime, stime, cutime, cstime fields 14 to 17.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 15 {
			continue
		}
		n := make([]int64, 4)
		for j := range n {
			n[j], _ = strconv.ParseInt(f[11+j], 10, 64)
		}
		ppid, _ := strconv.Atoi(f[1])
		out[pid] = procStat{ppid: ppid, ticks: n[0] + n[1], childTicks: n[2] + n[3]}
	}
	return out, nil
}

// load1 is the one-minute load average: how busy the shared host was.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// runPhase runs op from conc workers until dur has passed (each worker
// finishes the operation it is in), maxOps operations started (0: no
// cap) or op returns errDone. op returns its latency (the database call
// alone, not generating or checking), how many messages it moved and, for
// reads, a wrong answer; any other error stops the phase.
func runPhase(ctx context.Context, name string, conc int, dur time.Duration, maxOps int, cpu cpuMeter,
	op func(ctx context.Context, rng *rand.Rand) (lat time.Duration, msgs int, wrong, err error)) (phase, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		started atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		msgs    int64
		wrong   int
		first   string
		runErr  error
		wg      sync.WaitGroup
	)
	srv0, self0 := cpu.read()
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			var mine []time.Duration
			var n int64
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				msgs += n
				mu.Unlock()
			}()
			for ctx.Err() == nil && time.Since(start) < dur {
				if maxOps > 0 && started.Add(1) > int64(maxOps) {
					return
				}
				d, k, bad, err := op(ctx, rng)
				if err != nil {
					if errors.Is(err, errDone) {
						return
					}
					mu.Lock()
					if runErr == nil {
						runErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				mine = append(mine, d)
				n += int64(k)
				if bad != nil {
					mu.Lock()
					if wrong++; first == "" {
						first = bad.Error()
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	srv1, self1 := cpu.read()
	if runErr != nil {
		return phase{}, fmt.Errorf("%s: %w", name, runErr)
	}
	p := phase{
		Name: name, Ops: len(lat), Msgs: msgs, Seconds: elapsed.Seconds(),
		ServerCPU: -1, BenchCPU: self1 - self0, Load1: load1(), Wrong: wrong, FirstWrong: first,
	}
	if srv0 >= 0 && srv1 >= 0 {
		p.ServerCPU = srv1 - srv0
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		p.P50ms = ms(percentile(lat, 50))
		p.P99ms = ms(percentile(lat, 99))
	}
	return p, nil
}

// errDone ends a worker without failing the phase (the fill is complete).
var errDone = errors.New("done")

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
