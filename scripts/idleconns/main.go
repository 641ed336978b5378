// Command idleconns measures what idle WebSocket connections cost a running
// Moim node: goroutines, resident memory and (with -pid) threads, before
// and after it opens -conns WebSockets that then sit idle.
//
// It signs up (or logs in) -users accounts named idle_0001, idle_0002, …
// with the password "password1" through the public REST API, reads the
// node's /metrics (and /proc/PID/status when -pid is given), dials -conns
// WebSockets to /ws spread over those users and over -sources loopback
// source addresses, waits for each connection's "ready" frame, lets the
// node settle (-settle, three seconds), reads the same figures again and
// prints a table and one JSON line. It exits 1 when fewer than -conns
// connections reached "ready".
//
// Start the node with cheap password hashing and enough descriptors (a
// shell without CAP_SYS_RESOURCE cannot pass its hard limit, ulimit -Hn;
// use that instead), then point the tool at it. The exec makes $! the
// node's own PID:
//
//	go build -o /tmp/moim-idle ./server
//	(ulimit -n 200000 && MOIM_BCRYPT_COST=4 MOIM_UPGRADE_LIMIT=off MOIM_DATA_DIR=$(mktemp -d) \
//	  MOIM_ADDR=127.0.0.1:18555 exec /tmp/moim-idle) &
//	until curl -sf http://127.0.0.1:18555/readyz >/dev/null; do sleep 0.2; done
//	go run ./scripts/idleconns -url http://127.0.0.1:18555 -conns 10000 -pid $!
//
// The goroutine delta after three seconds is mostly not the connections':
// fasthttp keeps the workers that served the upgrades (about one per dial
// in flight) parked for 10 s before it stops them. -settle 15s measures
// after they are gone.
//
// The connections are idle while measured: nothing reads them, and the
// node's pings (every 30 s) wait in the socket. With -hold the tool keeps
// them open afterwards; then one goroutine per 1,000 connections answers
// the pings, so the node's 75 s idle timeout does not close them.
//
// Each loopback source address gives about 28,000 ephemeral ports (Linux's
// default range), so more than ~20,000 connections need several -sources;
// every 127.0.0.0/8 address is local on Linux. -pid reads /proc, so it only
// works when the node runs on this host.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gobwas/ws/wsutil"

	"moim/internal/apiclient"
	"moim/scripts/internal/nofile"
)

const (
	password      = "password1"
	perSource     = 20000 // connections per loopback source address by default
	keepaliveSize = 1000  // connections per ping-answering goroutine during -hold
)

type options struct {
	base        *url.URL
	conns       int
	users       int
	sources     int
	pid         int
	hold        time.Duration
	concurrency int
	settle      time.Duration
}

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("idleconns", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: idleconns [flags]")
		fmt.Fprintln(fs.Output(), "Opens idle WebSockets to a Moim node and reports what they cost it (goroutines, RSS, threads).")
		fs.PrintDefaults()
	}
	rawURL := fs.String("url", "http://127.0.0.1:8080", "base URL of the Moim node (REST, /metrics and /ws)")
	conns := fs.Int("conns", 10000, "number of WebSocket connections to open")
	users := fs.Int("users", 100, "number of distinct users (idle_0001…) to sign up or log in; connections are spread over them round-robin")
	sources := fs.Int("sources", 0, "number of loopback source addresses 127.0.0.1..127.0.0.N to spread connections over (default: enough that each has at most 20,000)")
	pid := fs.Int("pid", 0, "PID of the node on this host, to read VmRSS and Threads from /proc/PID/status (optional)")
	hold := fs.Duration("hold", 0, "how long to keep the connections open after measuring (answering the node's pings meanwhile); Ctrl-C ends it early")
	conc := fs.Int("dial-concurrency", 200, "number of WebSocket dials in flight at once")
	settle := fs.Duration("settle", 3*time.Second, "how long to let the node settle after the last connection is ready, before measuring again (fasthttp's idle workers linger 10 s)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	base, err := url.Parse(strings.TrimSuffix(*rawURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		fmt.Fprintf(os.Stderr, "idleconns: -url must be http(s)://host:port, got %q\n", *rawURL)
		return 2
	}
	if *conns < 1 || *users < 1 || *conc < 1 || *sources < 0 || *pid < 0 || *hold < 0 || *settle < 0 {
		fmt.Fprintln(os.Stderr, "idleconns: -conns, -users and -dial-concurrency must be positive; -sources, -pid, -hold and -settle not negative")
		return 2
	}
	o := options{base: base, conns: *conns, users: *users, sources: *sources, pid: *pid, hold: *hold, concurrency: *conc, settle: *settle}
	if o.sources == 0 {
		o.sources = (o.conns + perSource - 1) / perSource
	}
	if o.sources > 1<<24-2 {
		fmt.Fprintln(os.Stderr, "idleconns: -sources must fit in 127.0.0.0/8")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return measure(ctx, o)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "idleconns: "+format+"\n", args...)
}

// sample is one reading of the node.
type sample struct {
	goroutines float64
	rss        float64 // process_resident_memory_bytes
	heapInuse  float64 // go_memstats_heap_inuse_bytes
	hubConns   float64
	vmRSSKiB   int64 // /proc/PID/status VmRSS, -1 without -pid
	threads    int64 // /proc/PID/status Threads, -1 without -pid
}

func (o options) sample(ctx context.Context) (sample, error) {
	s := sample{vmRSSKiB: -1, threads: -1}
	m, err := (&apiclient.Client{Base: o.base.String()}).Metrics(ctx)
	if err != nil {
		return s, err
	}
	for name, dst := range map[string]*float64{
		"go_goroutines":                 &s.goroutines,
		"process_resident_memory_bytes": &s.rss,
		"go_memstats_heap_inuse_bytes":  &s.heapInuse,
		"moim_hub_connections":          &s.hubConns,
	} {
		v, ok := m.Value(name)
		if !ok {
			return s, fmt.Errorf("/metrics has no %s", name)
		}
		*dst = v
	}
	if o.pid > 0 {
		s.vmRSSKiB, s.threads, err = procStatus(o.pid)
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// procStatus reads VmRSS (KiB) and Threads of pid.
func procStatus(pid int) (rssKiB, threads int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1, -1, err
	}
	rssKiB, threads = -1, -1
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			rssKiB, _ = strconv.ParseInt(f[0], 10, 64)
		case "Threads":
			threads, _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	if rssKiB < 0 || threads < 0 {
		return -1, -1, fmt.Errorf("/proc/%d/status has no VmRSS or Threads", pid)
	}
	return rssKiB, threads, nil
}

// token signs user up (or finds it taken) and logs in.
func (o options) token(ctx context.Context, user string) (string, error) {
	c := &apiclient.Client{Base: o.base.String()}
	if _, err := c.SignupOrLogin(ctx, user, password, "Idle "+user); err != nil {
		return "", err
	}
	return c.Token, nil
}

// tokens logs in every user, eight at a time.
func (o options) tokens(ctx context.Context) ([]string, error) {
	toks := make([]string, o.users)
	errs := make([]error, o.users)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(8, o.users) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= o.users || ctx.Err() != nil {
					return
				}
				toks[i], errs[i] = o.token(ctx, fmt.Sprintf("idle_%04d", i+1))
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if first != nil {
		return nil, fmt.Errorf("%d of %d users failed; the first: %w", failed, o.users, first)
	}
	return toks, nil
}

// dial opens one WebSocket from source and waits for its "ready" frame.
func dial(ctx context.Context, wsURL string, source net.IP) (*apiclient.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, br, err := apiclient.DialURL(ctx, wsURL, apiclient.DialOptions{Source: source})
	if err != nil {
		return nil, err
	}
	c := apiclient.NewConn(conn, br)
	dl, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(dl)
	if _, err := c.AwaitReady(); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	return c, nil
}

// dialAll opens o.conns WebSockets, o.concurrency at a time.
func (o options) dialAll(ctx context.Context, toks []string) ([]*apiclient.Conn, map[string]int) {
	scheme := "ws"
	if o.base.Scheme == "https" {
		scheme = "wss"
	}
	bind := apiclient.IsLoopback(o.base.Hostname())
	if !bind {
		logf("%s is not loopback: dialing from the default source address, -sources ignored", o.base.Hostname())
	}
	base := scheme + "://" + o.base.Host + o.base.Path + "/ws?token="
	clients := make([]*apiclient.Conn, o.conns)
	var (
		mu      sync.Mutex
		errs    = map[string]int{}
		next    atomic.Int64
		done    atomic.Int64
		started = time.Now()
	)
	var wg sync.WaitGroup
	for range min(o.concurrency, o.conns) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= o.conns || ctx.Err() != nil {
					return
				}
				var src net.IP
				if bind {
					src = apiclient.SourceIP(i % o.sources)
				}
				c, err := dial(ctx, base+url.QueryEscape(toks[i%o.users]), src)
				if err != nil {
					mu.Lock()
					errs[err.Error()]++
					mu.Unlock()
					continue
				}
				clients[i] = c
				if n := done.Add(1); n%1000 == 0 {
					logf("%d connections ready (%.1fs)", n, time.Since(started).Seconds())
				}
			}
		})
	}
	wg.Wait()
	return clients, errs
}

// keepalive answers the node's pings on cs until ctx ends, sweeping the
// connections in turn with a short read deadline; it reports how many
// failed.
func keepalive(ctx context.Context, cs []*apiclient.Conn) int {
	dead := make([]bool, len(cs))
	failed := 0
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return failed
		case <-t.C:
		}
		for i, c := range cs {
			if dead[i] || ctx.Err() != nil {
				continue
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
			for {
				// Pings are answered inside; anything else is discarded.
				_, _, err := wsutil.ReadServerData(c.RW)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if err != nil {
					dead[i] = true
					failed++
					break
				}
			}
			_ = c.SetReadDeadline(time.Time{})
		}
	}
}

// result is what one run found; it is also the JSON line.
type result struct {
	Conns            int     `json:"conns"`
	Ready            int     `json:"ready"`
	Users            int     `json:"users"`
	Sources          int     `json:"sources"`
	DialSeconds      float64 `json:"dial_seconds"`
	GoroutinesBefore int64   `json:"goroutines_before"`
	GoroutinesAfter  int64   `json:"goroutines_after"`
	GoroutinesDelta  int64   `json:"goroutines_delta"`
	RSSBeforeBytes   int64   `json:"rss_before_bytes"` // process_resident_memory_bytes
	RSSAfterBytes    int64   `json:"rss_after_bytes"`
	VmRSSBeforeKiB   *int64  `json:"vmrss_before_kib,omitempty"` // /proc/PID/status
	VmRSSAfterKiB    *int64  `json:"vmrss_after_kib,omitempty"`
	ThreadsBefore    *int64  `json:"threads_before,omitempty"`
	ThreadsAfter     *int64  `json:"threads_after,omitempty"`
	RSSPerConnKiB    float64 `json:"rss_per_conn_kib"`
	RSSPerConnSource string  `json:"rss_per_conn_source"`
	HeapInuseBefore  int64   `json:"heap_inuse_before_bytes"`
	HeapInuseAfter   int64   `json:"heap_inuse_after_bytes"`
	HubConnsBefore   int64   `json:"hub_connections_before"`
	HubConnsAfter    int64   `json:"hub_connections_after"`
}

func newResult(o options, ready int, dial time.Duration, b, a sample) result {
	r := result{
		Conns: o.conns, Ready: ready, Users: o.users, Sources: o.sources,
		DialSeconds:      dial.Round(time.Millisecond).Seconds(),
		GoroutinesBefore: int64(b.goroutines), GoroutinesAfter: int64(a.goroutines),
		GoroutinesDelta: int64(a.goroutines) - int64(b.goroutines),
		RSSBeforeBytes:  int64(b.rss), RSSAfterBytes: int64(a.rss),
		HeapInuseBefore: int64(b.heapInuse), HeapInuseAfter: int64(a.heapInuse),
		HubConnsBefore: int64(b.hubConns), HubConnsAfter: int64(a.hubConns),
		RSSPerConnSource: "process_resident_memory_bytes",
	}
	deltaKiB := (a.rss - b.rss) / 1024
	if o.pid > 0 {
		r.VmRSSBeforeKiB, r.VmRSSAfterKiB = &b.vmRSSKiB, &a.vmRSSKiB
		r.ThreadsBefore, r.ThreadsAfter = &b.threads, &a.threads
		deltaKiB = float64(a.vmRSSKiB - b.vmRSSKiB)
		r.RSSPerConnSource = "/proc/PID/status VmRSS"
	}
	if ready > 0 {
		r.RSSPerConnKiB = math.Round(deltaKiB/float64(ready)*100) / 100
	}
	return r
}

func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

func (r result) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "connections\t%d ready of %d (%d users, %d sources, dialed in %.1fs)\n", r.Ready, r.Conns, r.Users, r.Sources, r.DialSeconds)
	fmt.Fprintf(tw, "\tbefore\tafter\tdelta\n")
	fmt.Fprintf(tw, "goroutines\t%d\t%d\t%+d\n", r.GoroutinesBefore, r.GoroutinesAfter, r.GoroutinesDelta)
	if r.ThreadsBefore != nil {
		fmt.Fprintf(tw, "threads (/proc)\t%d\t%d\t%+d\n", *r.ThreadsBefore, *r.ThreadsAfter, *r.ThreadsAfter-*r.ThreadsBefore)
		fmt.Fprintf(tw, "RSS (/proc VmRSS)\t%s\t%s\t%+.1f MiB\n", mib(*r.VmRSSBeforeKiB*1024), mib(*r.VmRSSAfterKiB*1024), float64(*r.VmRSSAfterKiB-*r.VmRSSBeforeKiB)/1024)
	}
	fmt.Fprintf(tw, "RSS (/metrics)\t%s\t%s\t%+.1f MiB\n", mib(r.RSSBeforeBytes), mib(r.RSSAfterBytes), float64(r.RSSAfterBytes-r.RSSBeforeBytes)/(1<<20))
	fmt.Fprintf(tw, "Go heap in use\t%s\t%s\t%+.1f MiB\n", mib(r.HeapInuseBefore), mib(r.HeapInuseAfter), float64(r.HeapInuseAfter-r.HeapInuseBefore)/(1<<20))
	fmt.Fprintf(tw, "moim_hub_connections\t%d\t%d\t%+d\n", r.HubConnsBefore, r.HubConnsAfter, r.HubConnsAfter-r.HubConnsBefore)
	fmt.Fprintf(tw, "RSS per connection\t%.2f KiB\t(%s)\t\n", r.RSSPerConnKiB, r.RSSPerConnSource)
	tw.Flush()
}

func measure(ctx context.Context, o options) int {
	logf("%s", nofile.Raise(o.conns+100))
	if o.pid > 0 {
		if _, _, err := procStatus(o.pid); err != nil {
			logf("-pid %d: %v", o.pid, err)
			return 2
		}
	}
	logf("logging in %d users at %s", o.users, o.base)
	toks, err := o.tokens(ctx)
	if err != nil {
		logf("set up users: %v", err)
		return 1
	}
	before, err := o.sample(ctx)
	if err != nil {
		logf("before: %v", err)
		return 1
	}
	if o.pid > 0 {
		// A wrapper's PID ((...) & without exec) is the usual mistake.
		if vm := float64(before.vmRSSKiB) * 1024; vm < before.rss/2 || vm > before.rss*2 {
			logf("WARNING: -pid %d has VmRSS %s but the node reports %s; is it the node's PID?", o.pid, mib(int64(vm)), mib(int64(before.rss)))
		}
	}
	logf("dialing %d WebSockets, %d at a time, from %d source address(es)", o.conns, o.concurrency, o.sources)
	start := time.Now()
	clients, errs := o.dialAll(ctx, toks)
	dialTime := time.Since(start)
	var open []*apiclient.Conn
	for _, c := range clients {
		if c != nil {
			open = append(open, c)
		}
	}
	defer closeAll(open)
	if len(errs) > 0 {
		type kv struct {
			msg string
			n   int
		}
		var list []kv
		for m, n := range errs {
			list = append(list, kv{m, n})
		}
		sort.Slice(list, func(i, j int) bool { return list[i].n > list[j].n })
		for i, e := range list {
			if i == 5 {
				logf("… and %d other errors", len(list)-5)
				break
			}
			logf("%d× dial failed: %s", e.n, e.msg)
		}
	}
	logf("%d of %d connections ready in %.1fs; settling %s", len(open), o.conns, dialTime.Seconds(), o.settle)
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		logf("interrupted")
		return 1
	}
	after, err := o.sample(ctx)
	if err != nil {
		logf("after: %v", err)
		return 1
	}
	r := newResult(o, len(open), dialTime, before, after)
	r.print(os.Stdout)
	line, _ := json.Marshal(r)
	fmt.Println(string(line))

	if o.hold > 0 {
		logf("holding %d connections for %s", len(open), o.hold)
		hctx, cancel := context.WithTimeout(ctx, o.hold)
		var failed atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < len(open); i += keepaliveSize {
			group := open[i:min(i+keepaliveSize, len(open))]
			wg.Go(func() { failed.Add(int64(keepalive(hctx, group))) })
		}
		<-hctx.Done()
		cancel()
		wg.Wait()
		logf("held: %d of %d connections failed meanwhile", failed.Load(), len(open))
	}
	if len(open) < o.conns {
		logf("FAIL: only %d of %d connections reached ready", len(open), o.conns)
		return 1
	}
	return 0
}

// closeAll says goodbye (1000) and closes every connection.
func closeAll(cs []*apiclient.Conn) {
	for _, c := range cs {
		_ = c.Goodbye()
	}
}
