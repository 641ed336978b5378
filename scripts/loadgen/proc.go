package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of a process.
type procSample struct {
	cpuTicks int64 // utime + stime
	rssKiB   int64 // VmRSS
	at       time.Time
}

// readProc reads /proc/PID/stat and /proc/PID/status; pid 0 is this
// process.
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	s := procSample{at: time.Now()}
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted after its last ')'. utime and stime are fields 14, 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return s, fmt.Errorf("%s/stat: no command name", dir)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("%s/stat: only %d fields", dir, len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("%s/stat: bad utime/stime %q %q", dir, f[11], f[12])
	}
	s.cpuTicks = ut + st
	b, err = os.ReadFile(dir + "/status")
	if err != nil {
		return s, err
	}
	s.rssKiB = -1
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if fs := strings.Fields(v); len(fs) > 0 {
				s.rssKiB, _ = strconv.ParseInt(fs[0], 10, 64)
			}
		}
	}
	if s.rssKiB < 0 {
		return s, fmt.Errorf("%s/status has no VmRSS (a zombie?)", dir)
	}
	return s, nil
}

// hostTicks are the machine's CPU ticks from /proc/stat's aggregate line:
// busy (neither idle, waiting for I/O nor stolen), steal (time the
// hypervisor ran something else while this machine's CPUs had work: a
// stall every process here sees, however idle it looks) and the total.
type hostTicks struct{ busy, steal, total int64 }

// hostCPU reads the aggregate line of /proc/stat.
func hostCPU() (hostTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostTicks{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseHostCPU(line)
}

// parseHostCPU parses /proc/stat's aggregate line.
func parseHostCPU(line string) (hostTicks, error) {
	var t hostTicks
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return t, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	// user nice system idle iowait irq softirq steal; guest time, after
	// them, is counted in user and nice already.
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return t, fmt.Errorf("/proc/stat: %q: %v", line, err)
		}
		t.total += n
		switch i {
		case 3, 4: // idle, iowait
		case 7:
			t.steal += n
		default:
			t.busy += n
		}
	}
	return t, nil
}

// procName is the command name of pid, for the report.
func procName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// procResult is what one -pid process used during a stage.
type procResult struct {
	PID          int     `json:"pid"`
	Name         string  `json:"name"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	CPUPercent   float64 `json:"cpu_percent"` // of one core, over the window
	WindowS      float64 `json:"window_seconds"`
	PeakRSSKiB   int64   `json:"peak_rss_kib"`
	CPUMsPer1000 float64 `json:"cpu_ms_per_1000_deliveries"`
	Err          string  `json:"error,omitempty"`
}

// procWatch samples the -pid processes (and this one) at a stage's start,
// every second for the peak RSS, and at its end.
type procWatch struct {
	pids  []int
	mu    sync.Mutex
	start []procSample
	peak  []int64
	errs  []error
	self  procSample
	// host CPU ticks at the start, to tell how busy the machine was
	ticks hostTicks
	stop  chan struct{}
	done  chan struct{}
}

func startProcWatch(pids []int) *procWatch {
	w := &procWatch{
		pids: pids, start: make([]procSample, len(pids)), peak: make([]int64, len(pids)),
		errs: make([]error, len(pids)), stop: make(chan struct{}), done: make(chan struct{}),
	}
	for i, pid := range pids {
		w.start[i], w.errs[i] = readProc(pid)
		w.peak[i] = w.start[i].rssKiB
	}
	w.self, _ = readProc(0)
	w.ticks, _ = hostCPU()
	go func() {
		defer close(w.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.sample()
			}
		}
	}()
	return w
}

func (w *procWatch) sample() []procSample {
	out := make([]procSample, len(w.pids))
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, pid := range w.pids {
		s, err := readProc(pid)
		out[i] = s
		if err != nil {
			if w.errs[i] == nil {
				w.errs[i] = err
			}
			continue
		}
		w.peak[i] = max(w.peak[i], s.rssKiB)
	}
	return out
}

// hostUsage is how busy the whole machine was during a stage: a run
// that shares its host with other work measures that work too.
type hostUsage struct {
	Cores       int     `json:"cores"`
	BusyPercent float64 `json:"busy_percent"` // of all cores
	// StealPercent is the share of all cores' time the hypervisor took
	// while they had work: latency no server here could help.
	StealPercent float64 `json:"steal_percent"`
	// OtherCPUS is CPU time used by processes other than the -pid ones
	// and the generator, in core-seconds.
	OtherCPUS float64 `json:"other_cpu_seconds"`
}

// host reports the machine's load over the stage; call after finish.
func (w *procWatch) host(procs []procResult, selfCPU float64) hostUsage {
	t, err := hostCPU()
	if err != nil || t.total <= w.ticks.total {
		return hostUsage{}
	}
	total := float64(t.total - w.ticks.total)
	u := hostUsage{
		Cores:        runtime.NumCPU(),
		BusyPercent:  round2(float64(t.busy-w.ticks.busy) / total * 100),
		StealPercent: round2(float64(t.steal-w.ticks.steal) / total * 100),
	}
	other := float64(t.busy-w.ticks.busy)/clockTicks - selfCPU
	for _, p := range procs {
		other -= p.CPUSeconds
	}
	u.OtherCPUS = round2(max(0, other))
	return u
}

// finish takes the end samples; received scales CPU-ms per 1000
// deliveries. It returns the figures per pid and this process's CPU
// seconds.
func (w *procWatch) finish(received int64) ([]procResult, float64) {
	close(w.stop)
	<-w.done
	end := w.sample()
	out := make([]procResult, len(w.pids))
	for i, pid := range w.pids {
		r := procResult{PID: pid, Name: procName(pid)}
		if w.errs[i] != nil {
			r.Err = w.errs[i].Error()
			out[i] = r
			continue
		}
		ticks := end[i].cpuTicks - w.start[i].cpuTicks
		r.CPUSeconds = float64(ticks) / clockTicks
		r.WindowS = round2(end[i].at.Sub(w.start[i].at).Seconds())
		if r.WindowS > 0 {
			r.CPUPercent = round2(r.CPUSeconds / r.WindowS * 100)
		}
		r.PeakRSSKiB = w.peak[i]
		if received > 0 {
			r.CPUMsPer1000 = round2(r.CPUSeconds * 1000 / (float64(received) / 1000))
		}
		out[i] = r
	}
	self, err := readProc(0)
	var selfCPU float64
	if err == nil {
		selfCPU = float64(self.cpuTicks-w.self.cpuTicks) / clockTicks
	}
	return out, selfCPU
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// profileStage starts the generator's CPU profile of stage n when
// -cpuprofile asks for one, and returns what stops it and writes it.
func (lg *loadgen) profileStage(n int) (stop func()) {
	if lg.o.cpuProfile == "" {
		return func() {}
	}
	name := fmt.Sprintf("%s.stage%d.pprof", lg.o.cpuProfile, n)
	f, err := os.Create(name)
	if err != nil {
		logf("stage %d: no CPU profile: %v", n, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		logf("stage %d: no CPU profile: %v", n, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			logf("stage %d: CPU profile: %v", n, err)
			return
		}
		logf("stage %d: the generator's CPU profile is in %s", n, name)
	}
}
