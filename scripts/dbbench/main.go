// Command dbbench measures candidate message databases on the chat's own
// access pattern, through their real Go drivers: bulk appends (batches of
// 1, 100 and 1000 messages), the last 50 messages of a room, 50 before a
// seq, everything after a seq (sync) and search within a room, on a store
// already holding -messages messages spread over -rooms rooms.
//
// The MongoDB side is Moim's own message store (package store: its
// schema, indexes and queries); the MySQL side is the same operations on
// a table keyed by (room_id, seq). Every read's answer is checked against
// what was written. See docs/DB-ANALYSIS.md for the measured figures.
//
//	go run ./scripts/dbbench -mysql 'moim:moim@tcp(127.0.0.1:3306)/'          # MariaDB + embedded FerretDB/SQLite
//	go run ./scripts/dbbench -mysql 'root:pw@tcp(127.0.0.1:3306)/' -mongo mongodb://127.0.0.1:27017
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	mysqlDSN  string
	mongoURI  string
	ferret    []string // "sqlite", "pg"
	pgURL     string
	pgBin     string
	mysqlPID  int
	mongoPID  int
	pgPID     int
	dbName    string
	dir       string
	messages  int
	rooms     int
	batches   []int
	fillBatch int
	appendMax int
	conc      int
	duration  time.Duration
	maxOps    int
	seed      uint64
	keep      bool
	markdown  bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("dbbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: go run ./scripts/dbbench [flags]

Measures message databases on Moim's chat access pattern through their real
Go drivers. Per backend it fills the store with -messages messages over
-rooms rooms (batches of -fill-batch), then runs each operation for
-duration from -conc goroutines:
  append, batches of B   one insert of B new messages (each -batches size)
  last 50 of a room      the newest page (history without a cursor)
  50 before seq N        an older page, N random in the room
  after seq N (sync)     up to 500 messages after N, oldest first
  search in a room       up to 20 messages whose body contains "정산",
                         case-insensitively, newest first
Every read's answer (count and first seq) is checked against what was
written; a wrong answer is counted and makes the exit status 1.

It reports per operation: operations, messages per operation, throughput,
latency p50/p99 (the database call alone), the CPU seconds of the database
server process (when it runs on this host) and of this process, and the
one-minute load average; per backend: stored messages and disk bytes per
message.

Backends (each in a database of its own, -db, dropped at the end unless
-keep):
  -mysql DSN       MySQL 8 or MariaDB; messages in a table keyed by
                   (room_id, seq), multi-row INSERT, LIKE for search
  -mongo URI       a real MongoDB (or any MongoDB-wire server) through
                   Moim's store package
  -ferret LIST     FerretDB 1.24 embedded in this process (as
                   scripts/ferretdb runs it) on sqlite and/or pg
                   (PostgreSQL). FerretDB is not MongoDB: its figures
                   show the driver path and schema, not MongoDB's
                   storage engine
With -ferret pg and no -pg, a private PostgreSQL cluster is started on a
loopback port in a temporary directory and stopped by PID at the end.

Exit status: 0 when every backend ran and every answer was right, 1
otherwise, 2 for bad flags.

Flags:
`)
		fs.PrintDefaults()
	}
	o := &config{}
	fs.StringVar(&o.mysqlDSN, "mysql", "", "MySQL/MariaDB server DSN in go-sql-driver form, e.g. 'moim:moim@tcp(127.0.0.1:3306)/' (any database in it is ignored; empty: MySQL not measured)")
	fs.StringVar(&o.mongoURI, "mongo", "", "MongoDB URI, e.g. mongodb://127.0.0.1:27017 (empty: no real MongoDB; -ferret defaults to sqlite)")
	ferret := fs.String("ferret", "", "embedded FerretDB handlers to run: sqlite, pg, sqlite,pg or none (default: sqlite when -mongo is empty, none otherwise)")
	fs.StringVar(&o.pgURL, "pg", "", "PostgreSQL URL for -ferret pg, e.g. postgres://user:pass@127.0.0.1:5432/db (empty: start a private cluster)")
	fs.StringVar(&o.pgBin, "pg-bin", "", "directory with PostgreSQL's initdb and postgres for the private cluster (default: initdb's on PATH, else the newest /usr/lib/postgresql/*/bin)")
	fs.IntVar(&o.mysqlPID, "mysql-pid", 0, "PID of the MySQL server on this host, for its CPU time (default: read from the server's @@pid_file when that file is on this host)")
	fs.IntVar(&o.mongoPID, "mongo-pid", 0, "PID of mongod on this host, for its CPU time (0: not measured)")
	fs.IntVar(&o.pgPID, "pg-pid", 0, "PID of the postmaster behind -pg on this host, for the CPU time of it and its backends (0: not measured; the private cluster's is known)")
	fs.StringVar(&o.dbName, "db", "", "database name used on every backend; must not exist (default: dbbench_PID)")
	fs.StringVar(&o.dir, "dir", "", "directory for FerretDB's SQLite files (default: a new temporary directory, removed at the end unless -keep)")
	fs.IntVar(&o.messages, "messages", 1_000_000, "messages stored before the operations are measured")
	fs.IntVar(&o.rooms, "rooms", 10_000, "rooms the messages are spread over (each message's room is picked at random)")
	batches := fs.String("batches", "1,100,1000", "append batch sizes to measure, comma-separated (at most 5000)")
	fs.IntVar(&o.fillBatch, "fill-batch", 1000, "batch size of the fill (at most 5000)")
	fs.IntVar(&o.appendMax, "append-max", 0, "most messages one append phase writes, so the store stays near -messages while reads are measured (default: 5% of -messages, at least the largest batch)")
	fs.IntVar(&o.conc, "conc", 4, "goroutines running each operation at once (and filling)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each operation runs")
	fs.IntVar(&o.maxOps, "ops", 0, "at most this many operations per measured phase, the fill excepted (0: no limit, only -duration)")
	seed := fs.Uint64("seed", 1, "seed of the generated messages (the same seed writes the same corpus)")
	fs.BoolVar(&o.keep, "keep", false, "keep the databases and FerretDB's SQLite files instead of dropping them (a private PostgreSQL cluster is always removed)")
	fs.BoolVar(&o.markdown, "markdown", false, "print the tables as Markdown (for docs/DB-ANALYSIS.md)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.seed = *seed
	if o.dbName == "" {
		o.dbName = "dbbench_" + strconv.Itoa(os.Getpid())
	}
	for _, s := range strings.Split(*batches, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 5000 {
			return nil, fmt.Errorf("-batches: %q is not a batch size from 1 to 5000", s)
		}
		o.batches = append(o.batches, n)
	}
	if o.appendMax == 0 {
		o.appendMax = max(o.messages/20, slices.Max(o.batches))
	}
	switch f := strings.TrimSpace(*ferret); {
	case f == "" && o.mongoURI == "":
		o.ferret = []string{"sqlite"}
	case f == "" || f == "none":
	default:
		for _, h := range strings.Split(f, ",") {
			switch h = strings.TrimSpace(h); h {
			case "sqlite", "pg":
				o.ferret = append(o.ferret, h)
			default:
				return nil, fmt.Errorf("-ferret: %q is not sqlite or pg", h)
			}
		}
	}
	switch {
	case o.messages < 1 || o.rooms < 1:
		return nil, errors.New("-messages and -rooms must be at least 1")
	case o.fillBatch < 1 || o.fillBatch > 5000:
		return nil, errors.New("-fill-batch must be 1 to 5000")
	case o.conc < 1 || o.duration <= 0 || o.maxOps < 0 || o.appendMax < 0:
		return nil, errors.New("-conc and -duration must be positive, -ops and -append-max not negative")
	case o.mysqlPID < 0 || o.mongoPID < 0 || o.pgPID < 0:
		return nil, errors.New("PIDs must not be negative")
	case !validName(o.dbName):
		return nil, errors.New("-db must be 1 to 40 characters of a-z, 0-9 and _")
	case o.mysqlDSN == "" && o.mongoURI == "" && len(o.ferret) == 0:
		return nil, errors.New("nothing to measure: give -mysql, -mongo or -ferret")
	}
	return o, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "dbbench:", err)
		return 2
	}
	results, err := benchAll(ctx, o, stdout, stderr)
	if err != nil {
		// Each failure was logged as it happened.
		return 1
	}
	for _, r := range results {
		for _, p := range r.Phases {
			if p.Wrong > 0 {
				fmt.Fprintf(stderr, "dbbench: %s: %s: %d wrong answers, e.g. %s\n", r.Target, p.Name, p.Wrong, p.FirstWrong)
				return 1
			}
		}
	}
	return 0
}

// benchAll measures every requested backend in turn, printing each table
// as soon as it is done. A backend that fails is logged at once and the
// others still run; the error joins every failure.
func benchAll(ctx context.Context, o *config, stdout, stderr io.Writer) ([]*result, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "dbbench: "+format+"\n", args...) }
	printHeader(stdout, o)
	var out []*result
	var errs []error
	for _, name := range targetNames(o) {
		if ctx.Err() != nil {
			logf("stopped: %v", ctx.Err())
			errs = append(errs, ctx.Err())
			break
		}
		logf("%s: starting", name)
		t, err := openTarget(ctx, name, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			logf("%s: %v", name, err)
			continue
		}
		r, err := bench(ctx, t, o, logf)
		if cerr := t.close(!o.keep); cerr != nil {
			logf("%s: %v", name, cerr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			logf("%s: %v", name, err)
			continue
		}
		printResult(stdout, r, o.markdown)
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// bench fills one backend and measures every operation on it.
func bench(ctx context.Context, t *target, o *config, logf func(string, ...any)) (*result, error) {
	r := &result{Target: t.name, About: t.about, CPUNote: t.cpuNote}
	c := newCorpus(o.rooms, o.seed)
	total := int64(o.messages)
	var claimed atomic.Int64
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				n := min(claimed.Load(), total)
				logf("%s: fill %d/%d messages, %.0f msg/s", t.name, n, total, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	fb := int64(o.fillBatch)
	fill, err := runPhase(ctx, fmt.Sprintf("fill 0→%s, batches of %d", count(total), fb), o.conc, 1<<62, 0, t.cpu,
		func(ctx context.Context, _ *rand.Rand) (time.Duration, int, error, error) {
			from := claimed.Add(fb) - fb
			if from >= total {
				return 0, 0, nil, errDone
			}
			msgs := c.batch(int(min(fb, total-from)))
			t0 := time.Now()
			err := t.b.Insert(ctx, msgs)
			return time.Since(t0), len(msgs), nil, err
		})
	close(done)
	if err != nil {
		return nil, err
	}
	r.Phases = append(r.Phases, fill)
	logf("%s: filled %d messages in %.1f s", t.name, total, fill.Seconds)
	for _, b := range o.batches {
		var written atomic.Int64
		p, err := runPhase(ctx, fmt.Sprintf("append, batches of %d", b), o.conc, o.duration, o.maxOps, t.cpu,
			func(ctx context.Context, _ *rand.Rand) (time.Duration, int, error, error) {
				if written.Add(int64(b)) > int64(max(o.appendMax, b)) {
					return 0, 0, nil, errDone
				}
				msgs := c.batch(b)
				t0 := time.Now()
				err := t.b.Insert(ctx, msgs)
				return time.Since(t0), len(msgs), nil, err
			})
		if err != nil {
			return nil, err
		}
		r.Phases = append(r.Phases, p)
		logf("%s: %s: %d ops", t.name, p.Name, p.Ops)
	}
	r.Stored = c.total
	r.AvgBody = float64(c.bodyBytes) / float64(c.total)
	if r.Disk, err = t.disk(ctx); err != nil {
		return nil, err
	}
	if r.Disk.Rows != r.Stored {
		return nil, fmt.Errorf("the store holds %d messages, %d were written", r.Disk.Rows, r.Stored)
	}
	for _, op := range readOps {
		p, err := runPhase(ctx, op.name, o.conc, o.duration, o.maxOps, t.cpu,
			func(ctx context.Context, rng *rand.Rand) (time.Duration, int, error, error) {
				q := op.pick(c, rng)
				t0 := time.Now()
				got, err := op.run(ctx, t.b, q)
				d := time.Since(t0)
				if err != nil {
					return d, 0, nil, err
				}
				return d, len(got), check(q, got), nil
			})
		if err != nil {
			return nil, err
		}
		r.Phases = append(r.Phases, p)
		logf("%s: %s: %d ops", t.name, p.Name, p.Ops)
	}
	return r, nil
}
