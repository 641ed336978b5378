package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// loadRun is scripts/loadgen driving the bed's nodes as reference
// clients (-reconnect); its stderr goes to a log file, its stdout is kept
// for the JSON line.
type loadRun struct {
	cmd     *exec.Cmd
	stdout  bytes.Buffer
	logPath string
	sending chan struct{} // closed when the stage starts sending
	done    chan struct{}
	err     error
}

// startLoad runs loadgen against every node; extra flags go last.
func (b *bed) startLoad(extra ...string) (*loadRun, error) {
	o := b.o
	args := []string{
		"-url", strings.Join(b.urls(), ","),
		"-users", strconv.Itoa(o.users), "-rate", strconv.FormatFloat(o.rate, 'f', -1, 64), "-room-size", strconv.Itoa(o.roomSize),
		"-duration", o.duration.String(), "-drain", "30s", "-settle", "1s",
		"-reconnect", "-timeline", "-store-check", b.storeURI(), "-history-timeout", "60s",
		"-limits", "1h", // the verdicts are the chaos driver's; loadgen's pass then means "nothing lost, no unexpected error"
		"-prefix", "chaos_", "-setup-concurrency", "16", "-dial-concurrency", "50",
	}
	args = append(args, extra...)
	l := &loadRun{logPath: filepath.Join(b.dir, "loadgen.log"), sending: make(chan struct{}), done: make(chan struct{})}
	f, err := os.Create(l.logPath)
	if err != nil {
		return nil, err
	}
	l.cmd = exec.Command(o.bins.loadgen, args...)
	l.cmd.Stdout = &l.stdout
	stderr, err := l.cmd.StderrPipe()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := l.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start loadgen: %w", err)
	}
	go func() {
		defer close(l.done)
		l.watch(stderr, io.MultiWriter(f, o.progress))
		l.err = l.cmd.Wait()
		f.Close()
	}()
	return l, nil
}

// watch copies loadgen's stderr and notices when the stage sends.
func (l *loadRun) watch(r io.Reader, w io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	started := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w, line)
		if !started && strings.HasSuffix(line, "stage 1: sending") {
			started = true
			close(l.sending)
		}
	}
}

// waitSending waits for the first send; false if loadgen ended first.
func (l *loadRun) waitSending(timeout time.Duration) error {
	select {
	case <-l.sending:
		return nil
	case <-l.done:
		return fmt.Errorf("loadgen ended before sending: %v\n%s", l.err, tail(l.logPath, 20))
	case <-time.After(timeout):
		return fmt.Errorf("loadgen not sending after %s\n%s", timeout, tail(l.logPath, 20))
	}
}

// mark opens (SIGUSR1) or closes (SIGUSR2) loadgen's fault window.
func (l *loadRun) mark(open bool) {
	sig := syscall.SIGUSR2
	if open {
		sig = syscall.SIGUSR1
	}
	_ = l.cmd.Process.Signal(sig)
}

func (l *loadRun) stop() {
	select {
	case <-l.done:
	default:
		_ = l.cmd.Process.Signal(syscall.SIGKILL)
		<-l.done
	}
}

// wait returns loadgen's figures once it ends.
func (l *loadRun) wait(timeout time.Duration) (*lgResult, error) {
	select {
	case <-l.done:
	case <-time.After(timeout):
		l.stop()
		return nil, fmt.Errorf("loadgen still running after %s; killed", timeout)
	}
	var line []byte
	for _, ln := range bytes.Split(l.stdout.Bytes(), []byte("\n")) {
		if bytes.HasPrefix(ln, []byte("{")) {
			line = ln
		}
	}
	if line == nil {
		return nil, fmt.Errorf("loadgen printed no result (%v)\n%s", l.err, tail(l.logPath, 20))
	}
	var r lgResult
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("loadgen result: %w", err)
	}
	return &r, nil
}

// lgResult is the part of loadgen's JSON line the chaos report uses.
type lgResult struct {
	Sent              int64            `json:"sent"`
	NotSent           int64            `json:"not_sent"`
	Acked             int64            `json:"acked"`
	Expected          int64            `json:"expected_deliveries"`
	Received          int64            `json:"received_deliveries"`
	Lost              int64            `json:"lost"`
	Duplicates        int64            `json:"duplicates"`
	DuplicateMessages int64            `json:"duplicate_messages"`
	OutOfOrder        int64            `json:"out_of_order"`
	UnackedReceived   int64            `json:"unacked_received"`
	Errors            map[string]int64 `json:"errors"`
	Latency           latency          `json:"latency_ms"`
	Pass              bool             `json:"pass"`
	Failure           string           `json:"failure"`
	Store             *struct {
		Checked       int64 `json:"acked_seqs"`
		Found         int64 `json:"found"`
		Stored        int64 `json:"stored"`
		DuplicateCIDs int64 `json:"duplicate_cids"`
		Complete      bool  `json:"complete"`
	} `json:"store"`
	Recovery *struct {
		Reconnects int64 `json:"reconnects"`
		Refused    int64 `json:"refused_then_resent"`
		Resends    int64 `json:"resends"`
		Syncs      int64 `json:"syncs"`
	} `json:"recovery"`
	Fault *struct {
		StartS  float64 `json:"start_s"`
		EndS    float64 `json:"end_s"`
		Sent    int64   `json:"sent"`
		Latency latency `json:"latency_ms"`
	} `json:"fault_window"`
	Timeline []struct {
		T     float64 `json:"t"`
		Acked int64   `json:"acked"`
		Fault bool    `json:"fault"`
	} `json:"timeline"`
}

type latency struct {
	Count int64   `json:"count"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}
