// Command chaos breaks a running Moim deployment under load and checks
// that it keeps its promise: every acked message reaches every member
// once, in order, and is stored once. Each scenario starts its own world
// of real processes — a standalone FerretDB (scripts/ferretdb), three
// Moim nodes sharing it, MariaDB and Redis (or a Redis Cluster with
// replicas) — drives it with scripts/loadgen as reference clients
// (-reconnect), injects one fault mid-run and reports:
//
//	node-kill       kill -9 one of the three nodes
//	store-restart   kill -9 the FerretDB store, start it again 5 s later
//	redis-failover  kill -9 one Redis Cluster master (3 masters + 3 replicas)
//	storm           a slow consumer plus 1000 connections reconnecting at once, twice
//
//	go run ./scripts/chaos -redis "$MOIM_TEST_REDIS_URL" -mysql "$MOIM_TEST_MYSQL_DSN"
//
// -redis is a single Redis (each scenario uses a fresh key prefix and
// deletes it after), -mysql a server-level DSN (each scenario creates
// and drops a database). The cluster scenario starts its own cluster with
// scripts/redis-cluster.sh. Binaries are built with `go build` into a
// temporary directory unless -bin names one holding moim, loadgen and
// ferretdb. The output is a table per scenario, then one JSON line each;
// the exit status is 1 when a promise broke, 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"moim/scripts/internal/nofile"
)

// binaries are the programs a run starts.
type binaries struct {
	moim, loadgen, ferretdb string
}

type options struct {
	redisURL, mysqlDSN string
	scenarios          []string
	users              int
	rate               float64
	roomSize           int
	duration           time.Duration
	faultAt            time.Duration
	repo               string
	workDir            string
	keep               bool
	bins               binaries
	progress           io.Writer // loadgen's progress lines
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func parseFlags(args []string, stderr io.Writer) (*options, string, error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./scripts/chaos -redis URL -mysql DSN [flags]\n\nScenarios: %s\n\nFlags:\n", strings.Join(scenarioNames(), ", "))
		fs.PrintDefaults()
	}
	o := &options{}
	fs.StringVar(&o.redisURL, "redis", os.Getenv("MOIM_TEST_REDIS_URL"), "single Redis the nodes share, redis://host:port/db (default $MOIM_TEST_REDIS_URL); each scenario uses a fresh key prefix")
	fs.StringVar(&o.mysqlDSN, "mysql", os.Getenv("MOIM_TEST_MYSQL_DSN"), "server-level MySQL/MariaDB DSN, user:pass@tcp(host:port)/ (default $MOIM_TEST_MYSQL_DSN); each scenario creates and drops a database")
	list := fs.String("scenarios", strings.Join(scenarioNames(), ","), "comma-separated scenarios to run, in order")
	fs.IntVar(&o.users, "users", 300, "loadgen users (one WebSocket each), spread over the three nodes")
	fs.Float64Var(&o.rate, "rate", 300, "messages per second over all users")
	fs.IntVar(&o.roomSize, "room-size", 10, "members per room")
	fs.DurationVar(&o.duration, "duration", 25*time.Second, "how long loadgen sends in each scenario")
	fs.DurationVar(&o.faultAt, "fault-at", 6*time.Second, "when, after sending starts, the fault is injected")
	bin := fs.String("bin", "", "directory holding prebuilt moim, loadgen and ferretdb binaries (default: go build them into a temporary directory)")
	fs.StringVar(&o.workDir, "work", "", "directory for each scenario's data and logs (default: the system's temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep each scenario's directory (logs of every process) instead of removing it")
	quiet := fs.Bool("quiet", false, "do not copy loadgen's progress lines to stderr")
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	o.progress = stderr
	if *quiet {
		o.progress = io.Discard
	}
	for _, s := range strings.Split(*list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(scenarioNames(), s) {
			return nil, "", fmt.Errorf("-scenarios: unknown %q (have %s)", s, strings.Join(scenarioNames(), ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	switch {
	case len(o.scenarios) == 0:
		return nil, "", errors.New("-scenarios names none")
	case o.mysqlDSN == "":
		return nil, "", errors.New("-mysql (or MOIM_TEST_MYSQL_DSN) is required: the three nodes share one SQL database")
	case o.redisURL == "" && slices.ContainsFunc(o.scenarios, func(s string) bool { return !scenarioByName(s).cluster }):
		return nil, "", errors.New("-redis (or MOIM_TEST_REDIS_URL) is required: the three nodes share one Redis")
	case o.users < 3 || o.rate <= 0 || o.roomSize < 2:
		return nil, "", errors.New("-users must be at least 3, -rate positive, -room-size at least 2")
	case o.duration < o.faultAt+10*time.Second:
		return nil, "", errors.New("-duration must leave at least 10 s after -fault-at")
	}
	repo, err := findRepo()
	if err != nil {
		return nil, "", err
	}
	o.repo = repo
	return o, *bin, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, bin, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// 1000 storm connections live in this process.
	fmt.Fprintf(stderr, "chaos: %s\n", nofile.Raise(4096))
	if bin == "" {
		dir, err := os.MkdirTemp(o.workDir, "chaos-bin-")
		if err != nil {
			fmt.Fprintf(stderr, "chaos: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := build(ctx, o.repo, dir, stderr); err != nil {
			fmt.Fprintf(stderr, "chaos: %v\n", err)
			return 1
		}
		bin = dir
	}
	o.bins = binaries{moim: filepath.Join(bin, "moim"), loadgen: filepath.Join(bin, "loadgen"), ferretdb: filepath.Join(bin, "ferretdb")}

	var reports []*report
	for _, name := range o.scenarios {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "chaos: scenario %s\n", name)
		start := time.Now()
		r := runScenario(ctx, o, scenarioByName(name))
		fmt.Fprintf(stderr, "chaos: scenario %s done in %.0fs\n", name, time.Since(start).Seconds())
		reports = append(reports, r)
	}
	pass := ctx.Err() == nil
	for _, r := range reports {
		r.print(stdout)
		pass = pass && r.Pass
	}
	fmt.Fprintln(stdout)
	for _, r := range reports {
		fmt.Fprintln(stdout, r.jsonLine())
	}
	if !pass {
		return 1
	}
	return 0
}

// findRepo walks up from the working directory to the module's root.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module moim\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run inside the moim module (no go.mod for module moim above the working directory)")
		}
		dir = parent
	}
}

// goTool is the go command: on PATH, else the one this was built with.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// build compiles the three programs into dir (without -race: the
// processes under test run as they would in production).
func build(ctx context.Context, repo, dir string, stderr io.Writer) error {
	goBin := goTool()
	for name, pkg := range map[string]string{"moim": "./server", "loadgen": "./scripts/loadgen", "ferretdb": "./scripts/ferretdb"} {
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = repo
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", pkg, err)
		}
	}
	return nil
}

// runScenario builds the scenario's world, runs loadgen, injects the
// fault inside loadgen's fault window and checks the promises.
func runScenario(ctx context.Context, o *options, sc *scenario) *report {
	rep := &report{Scenario: sc.name, Title: sc.title, Users: o.users, Rate: o.rate, Fault: map[string]any{}}
	defer rep.judge()
	b, err := newBed(ctx, o, sc.name, sc.cluster)
	if err != nil {
		rep.Error = fmt.Sprintf("start: %v", err)
		return rep
	}
	defer b.close()
	run := sc.newRun()
	defer run.cleanup()
	extra, err := run.prepare(ctx, b)
	if err != nil {
		rep.Error = fmt.Sprintf("prepare: %v", err)
		return rep
	}
	lr, err := b.startLoad(extra...)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	defer lr.stop()
	if err := lr.waitSending(3 * time.Minute); err != nil {
		rep.Error = err.Error()
		return rep
	}
	select {
	case <-time.After(o.faultAt):
	case <-ctx.Done():
		rep.Error = "interrupted"
		return rep
	}
	lr.mark(true)
	faultErr := run.fault(ctx, b, rep)
	lr.mark(false)
	res, err := lr.wait(o.duration + 4*time.Minute)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	if faultErr != nil {
		rep.Error = fmt.Sprintf("fault: %v", faultErr)
	}
	rep.fill(res)
	run.after(ctx, b, res, rep)
	if o.keep {
		rep.Fault["logs"] = b.dir
	}
	return rep
}
