package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
)

// result is one backend's measurements.
type result struct {
	Target  string
	About   string
	CPUNote string
	Stored  int64
	AvgBody float64
	Disk    diskUse
	Phases  []phase
}

func printHeader(w io.Writer, o *config) {
	line := fmt.Sprintf("dbbench: %s messages over %s rooms (fill in batches of %d), %d goroutines, %s per operation, seed %d",
		count(int64(o.messages)), count(int64(o.rooms)), o.fillBatch, o.conc, o.duration, o.seed)
	host := fmt.Sprintf("host: %d cores (%s), %s, %s, load average at start %s", runtime.NumCPU(), cpuModel(), osName(), runtime.Version(), loadavg())
	if o.markdown {
		fmt.Fprintf(w, "%s  \n%s\n\n", line, host)
		return
	}
	fmt.Fprintf(w, "%s\n%s\n\n", line, host)
}

var header = []string{"operation", "ops", "msgs/op", "ops/s", "msgs/s", "p50 ms", "p99 ms", "server CPU s", "bench CPU s", "load1", "wrong"}

func printResult(w io.Writer, r *result, markdown bool) {
	rows := make([][]string, 0, len(r.Phases))
	for _, p := range r.Phases {
		srv := "-"
		if p.ServerCPU >= 0 {
			srv = fmt.Sprintf("%.1f", p.ServerCPU)
		}
		perOp := 0.0
		if p.Ops > 0 {
			perOp = float64(p.Msgs) / float64(p.Ops)
		}
		rows = append(rows, []string{
			p.Name, strconv.Itoa(p.Ops), trim(perOp), rate(p.OpsPerSec()), rate(p.MsgsPerSec()),
			trim(p.P50ms), trim(p.P99ms), srv, fmt.Sprintf("%.1f", p.BenchCPU), fmt.Sprintf("%.2f", p.Load1), strconv.Itoa(p.Wrong),
		})
	}
	d := r.Disk
	diskLine := fmt.Sprintf("stored %s messages (average body %.0f bytes); disk: %s data + %s index = %s, %.0f bytes per message (%s)",
		count(r.Stored), r.AvgBody, mib(d.Data), mib(d.Index), mib(d.Data+d.Index), float64(d.Data+d.Index)/float64(r.Stored), d.Source)
	if d.Files > 0 {
		diskLine += fmt.Sprintf("; on this host %s in %s, %.0f bytes per message", mib(d.Files), d.FilesWhat, float64(d.Files)/float64(r.Stored))
	}
	if markdown {
		fmt.Fprintf(w, "#### %s\n\n%s  \n%s\n\n", r.Target, r.About, r.CPUNote)
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat(" --- |", len(header)))
		for _, row := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
		fmt.Fprintf(w, "\n%s\n\n", diskLine)
		return
	}
	fmt.Fprintf(w, "== %s: %s\n%s\n", r.Target, r.About, r.CPUNote)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%s\n\n", diskLine)
}

// count writes n with thousands separators.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// rate rounds a throughput to what the run can tell apart.
func rate(v float64) string {
	if v >= 100 {
		return count(int64(v + 0.5))
	}
	return trim(v)
}

// trim prints v with about three significant digits.
func trim(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func osName() string {
	b, _ := os.ReadFile("/etc/os-release")
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
