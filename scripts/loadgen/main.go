// Command loadgen is the load generator Moim measures itself with: it
// signs up users, puts them in rooms, opens one WebSocket per user and
// sends chat messages at a paced rate, measuring end-to-end latency at
// every recipient, acks at every sender, loss and duplicates, and
// optionally the server's CPU and memory and the persisted history.
//
// Start the node with cheap password hashing, a per-connection send limit
// above what one generator user sends (rate ÷ users, messages per second,
// plus room for bursts) and enough descriptors. The exec makes $! the
// node's own PID, for -pid:
//
//	go build -o /tmp/moim ./server
//	(ulimit -n 100000 && MOIM_BCRYPT_COST=4 MOIM_SEND_RATE=1000 MOIM_SEND_BURST=1000 MOIM_SEND_LIMIT=off \
//	  MOIM_SIGNUP_LIMIT=off MOIM_UPGRADE_LIMIT=off MOIM_INVITE_RULE=anyone \
//	  MOIM_DATA_DIR=$(mktemp -d) MOIM_ADDR=127.0.0.1:8080 exec /tmp/moim) &
//	until curl -sf http://127.0.0.1:8080/readyz >/dev/null; do sleep 0.2; done
//	go run ./scripts/loadgen -url http://127.0.0.1:8080 -users 5000 -room-size 10 -rate 5000 -duration 60s -pid $!
//	go run ./scripts/loadgen -stages 100:100,1000:1000,5000:5000 -duration 60s -pid $!
//
// Each stage signs up (or logs in: usernames are deterministic, -prefix
// plus a five-digit number, so a second run reuses them) its users, makes
// fresh rooms of -room-size users each (the first member creates the room
// with the others as members), dials the WebSockets, sends one unmeasured
// message into each new room (-warmup: a room's first message makes the
// node restore its seq counter from the message store), waits -settle,
// sends for -duration, waits up to -drain for stragglers, closes
// everything and counts; a drain that ran out before every send was
// answered and every acked message delivered is reported as timed out
// (drain_timed_out), as what was still in flight counts as lost.
// Messages carry their send time (unix nanoseconds) in the body, so
// latency is measured at every recipient, the sender included; the
// generator and the node must share a clock (run them on one host). On
// Linux each delivery is also timed up to the kernel's receive time in
// the recipient's socket (socket_latency_ms, "latency (at the socket)"):
// the rest is the generator's own wait to read, which grows when it
// shares saturated cores with the server.
//
// -url takes several nodes, comma-separated: users are spread over them
// round-robin. With -reconnect every user runs the protocol's reference
// client (redial another node after a drop, sync from the last contiguous
// seq, resend unacked sends with the same cid, fill gaps by sync), so a
// fault is measured by what the users end up with; SIGUSR1 and SIGUSR2
// open and close a fault window whose messages get their own latency
// figures, -timeline adds per-second figures to the JSON and -store-check
// reads the message store directly. scripts/chaos drives it that way.
//
// -target centrifugo drives Centrifugo, the peer Moim is measured
// against, with the same workload: the same users, rooms, pacing and
// bodies, each room a channel with history and recovery, over its JSON
// client protocol (centrifugo.go); -centrifugo-secret signs the users'
// connection tokens. scripts/peerbench.sh runs both side by side.
//
// -storm measures a connection storm instead of traffic (storm.go): each
// stage's users dial at once into fresh rooms, each timed from its ready
// until it receives its room's REST-sent probes; scripts/stormbench.sh
// runs it on both engines.
//
// -push-subs, -push-away and -mentions add the club's pushes and mentions
// to the traffic (push.go): Web Push subscriptions through the web
// client's route, pointing at a push service loadgen serves and counts,
// members who never connect and so are pushed to, and bodies naming
// members with @username. The node must run with MOIM_PUSH_LOOPBACK=true;
// scripts/pushbench.sh compares the node with and without them.
//
// The result is a table per stage on stdout, then one JSON line per
// stage. A stage passes a latency limit when delivery p99 is at most the
// limit, no acked message was lost and no error happened; the exit code
// is 0 when every stage passes every -limits entry, else 1 (2 for bad
// flags).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"moim/internal/apiclient"
	"moim/scripts/internal/nofile"
)

// perSource is how many connections one loopback source address carries
// by default (Linux gives each about 28,000 ephemeral ports).
const perSource = 20000

var stderr = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(stderr, "loadgen: "+format+"\n", args...)
}

// stageSpec is one stage: how many users and how many messages a second.
type stageSpec struct {
	users int
	rate  float64
}

type options struct {
	// bases are the nodes' URLs; user i dials bases[i % len(bases)] and
	// REST requests go round-robin over them.
	bases          []*url.URL
	wsBases        []string // ws://host/ws?token= (Centrifugo: ws://host/connection/websocket) of each base
	stages         []stageSpec
	roomSize       int
	duration       time.Duration
	drain          time.Duration
	settle         time.Duration
	prefix         string
	password       string
	bodySize       int
	sources        int
	bind           bool
	dialConc       int
	setupConc      int
	senders        int
	warmup         bool
	warmupConc     int
	historyCheck   bool
	historyTimeout time.Duration
	pids           []int
	limits         []time.Duration
	// reconnect makes every client the protocol's reference client: it
	// redials after a drop, syncs and resends (reconnect.go).
	reconnect   bool
	alsoMembers []int64
	storeURI    string
	timeline    bool
	// cpuProfile names the files the generator's own CPU profile of each
	// stage's sending and drain goes to (PREFIX.stageN.pprof); "": none.
	cpuProfile string
	// target is the server's kind: "moim" or "centrifugo" (the peer
	// measured beside Moim, centrifugo.go); cfSecret is the peer's HMAC
	// key, to sign its connection tokens.
	target   string
	cfSecret []byte
	// storm replaces each stage's traffic by a connection storm
	// (storm.go): every WebSocket dialled at once, each timed from its
	// ready until it receives a probe sent each stormProbe; stormLimit is
	// the verdict's bound.
	storm                  bool
	stormProbe, stormLimit time.Duration
	// pushSubs subscribes every pushSubs-th connected user to pushes,
	// pushAway adds that many subscribed members who never connect to
	// each room, and mentions is the fraction of bodies naming another
	// member (push.go); pushSink is where the subscriptions point.
	pushSubs, pushAway int
	mentions           float64
	pushSink           string
	// pushWait keeps a stage's connections open after the drain for the
	// pushes of windows still open.
	pushWait time.Duration
}

// loadgen is one run: its options, REST client and the users so far.
type loadgen struct {
	o        *options
	tgt      target
	http     *http.Client
	accounts []*account
	runID    string
	// historyLimit is the page size of the history check.
	historyLimit atomic.Int64
	// nextBase picks the node of the next REST request, round-robin.
	nextBase atomic.Uint64
	// current is the stage running now, for the fault-window signals.
	current atomic.Pointer[stage]
	// sink is the push service the subscriptions point at (push.go), nil
	// without -push-subs and -push-away; away are the members who never
	// connect, kept across stages.
	sink *pushSink
	away []*account
}

func main() { os.Exit(run(os.Args[1:])) }

var prefixRE = regexp.MustCompile(`^[a-z0-9_.-]{1,27}$`)

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, `usage: go run ./scripts/loadgen [flags]

Drives a Moim node with group-chat traffic over its public REST API and
WebSocket and reports, per stage: target and achieved send rate, sent,
acked, expected and received deliveries, lost, duplicates, errors by code,
delivery latency at every recipient (p50/p90/p99/p99.9/max) and ack
latency, a PASS/FAIL verdict per latency limit, and (with -pid) the
node's CPU and memory. Progress is printed every second on stderr.

Start the node for a load test with:
  MOIM_BCRYPT_COST=4   so signing up thousands of users takes seconds;
  MOIM_SEND_RATE and MOIM_SEND_BURST well above rate/users (the messages
    per second each generator user sends), e.g. 1000 and 1000; the
    default 20/s and 40 fail larger rates with rate_limited errors;
  MOIM_SEND_LIMIT=off (or well above rate/users per window): each user's
    budget over all sockets, default 200/10s;
  MOIM_SIGNUP_LIMIT=off and MOIM_UPGRADE_LIMIT=off: the defaults (20
    sign-ups an hour, 120 upgrades a minute per client address) refuse
    a generator that is thousands of users on one host;
  MOIM_INVITE_RULE=anyone: rooms are created with strangers as
    member_ids, who would otherwise only be invited;
  ulimit -n above the number of users (plus a few hundred).
For example:
  (ulimit -n 100000 && MOIM_BCRYPT_COST=4 MOIM_SEND_RATE=1000 MOIM_SEND_BURST=1000 MOIM_SEND_LIMIT=off \
    MOIM_SIGNUP_LIMIT=off MOIM_UPGRADE_LIMIT=off MOIM_INVITE_RULE=anyone \
    MOIM_DATA_DIR=$(mktemp -d) MOIM_ADDR=127.0.0.1:8080 exec go-built-server) &
  go run ./scripts/loadgen -users 5000 -room-size 10 -rate 5000 -duration 60s -pid $!

Several nodes: -url http://a:8080,http://b:8080 spreads users over them.
Faults (scripts/chaos): -reconnect makes every user the protocol's
reference client (redial, sync, resend by cid); SIGUSR1 opens and SIGUSR2
closes a fault window reported apart; -timeline and -store-check add a
per-second timeline and a direct check of the message store.

Against a peer: -target centrifugo -url http://127.0.0.1:8000
-centrifugo-secret KEY drives a Centrifugo server with the same workload
(scripts/peerbench.sh runs both side by side and writes its config).

Pushes and mentions (scripts/pushbench.sh compares runs with and
without): -push-subs N subscribes every Nth user to Web Push, -push-away N
adds N subscribed members who never connect to every room, -mentions P
makes a fraction P of the bodies name another member with @username. The
subscriptions point at a push service loadgen serves on -push-sink, which
counts what the node posts; start the node with MOIM_PUSH_LOOPBACK=true.

Exit status: 0 when every stage passes every -limits entry, 1 otherwise,
2 for bad flags.

Flags:
`)
		fs.PrintDefaults()
	}
	rawURL := fs.String("url", "http://127.0.0.1:8080", "base URL of the Moim node (REST under /api, WebSocket at /ws); several nodes comma-separated: users are spread over them round-robin and REST requests rotate over them")
	users := fs.Int("users", 100, "number of users, one WebSocket each (ignored with -stages)")
	rate := fs.Float64("rate", 100, "messages per second over all users, paced centrally (ignored with -stages)")
	stages := fs.String("stages", "", "stages as users:rate pairs, comma-separated, each lasting -duration, e.g. 100:100,1000:1000,5000:5000 (replaces -users and -rate)")
	roomSize := fs.Int("room-size", 10, "members per room; users are grouped in order, the last room may be smaller")
	duration := fs.Duration("duration", 60*time.Second, "how long each stage sends")
	drain := fs.Duration("drain", 5*time.Second, "how long after sending stops to wait for outstanding acks and deliveries (ends early once everything arrived)")
	settle := fs.Duration("settle", time.Second, "pause between the last WebSocket's ready and the first send")
	prefix := fs.String("prefix", "lg_", "username prefix; users are PREFIX00001, PREFIX00002, … and are reused by later runs")
	password := fs.String("password", "loadgen-password", "password of the generator users (8 to 72 bytes)")
	bodySize := fs.Int("body-size", 100, "message body length in bytes (at least the ~50 the timestamp and cid take, at most 4000)")
	sources := fs.Int("sources", 0, "loopback source addresses 127.0.0.1…127.0.0.N to spread WebSockets over when the node is on loopback (default: ceil(users/20000); only used when above 1)")
	dialConc := fs.Int("dial-concurrency", 200, "WebSocket dials in flight at once")
	setupConc := fs.Int("setup-concurrency", 64, "REST requests (sign-up, login, room creation, history) in flight at once")
	senders := fs.Int("senders", 4*runtime.GOMAXPROCS(0), "writer goroutines the pacer hands sends to")
	warmup := fs.Bool("warmup", true, "before measuring, send one message into each new room and wait for it (a room's first message makes the node restore its seq counter from the message store); reported apart. -warmup=false measures cold rooms")
	warmupConc := fs.Int("warmup-concurrency", 8, "rooms warmed up at once (each first message may make the node query the message store)")
	historyCheck := fs.Bool("history-check", false, "after the drain, read every room's history (GET /api/rooms/{id}/messages?after=SEQ&limit=500, as the room's creator, paging from the last seq; a lower server cap on limit is followed) until every acked seq is there; reports how long that took and fails the stage if it never completes. The route serves a room's newest messages (about 1000) from Redis and older ones from the message store, so the store itself is only exercised for rooms that got more than that")
	historyTimeout := fs.Duration("history-timeout", 60*time.Second, "how long -history-check polls for the history to become complete")
	pids := fs.String("pid", "", "comma-separated PIDs on this host (e.g. the node and redis-server) whose CPU time (/proc/PID/stat) and peak VmRSS (/proc/PID/status, sampled every second) are reported per stage")
	limits := fs.String("limits", "1000ms,2000ms", "delivery p99 limits for the verdicts, comma-separated; the exit code needs every stage to pass all of them")
	reconnect := fs.Bool("reconnect", false, "run every client as the protocol's reference client (docs/PROTOCOL.md section 5): after a dropped connection redial the next -url after a short jittered backoff, sync the room from the last contiguous seq, resend unacked sends with the same cid; fill gaps with sync; resend sends refused as unavailable or rate_limited, and those refused as busy after the retry_after_ms the node names (sending nothing new from that user meanwhile: the pacer gives the due sends to users not told to wait, and counts them not sent when every user is). Drops and those refusals are then reported but do not fail the verdict; a lost acked message still does")
	alsoMembers := fs.String("also-members", "", "comma-separated user ids added to every room the generator creates (e.g. a slow consumer driven by another tool); they are not generator clients and are not measured")
	storeCheck := fs.String("store-check", "", "MongoDB URI of the message store (database in the path, default moim): after the drain, poll it until every acked seq of every room is stored, and report stored messages and any client id stored under two seqs (times out after -history-timeout)")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile over each stage's sending and drain to PREFIX.stageN.pprof (go tool pprof reads it): where a generator that shares the cores with the server spends them")
	timeline := fs.Bool("timeline", false, "add a per-second timeline (sent, acked, deliveries, errors, delivery p99) to the JSON line")
	tgt := fs.String("target", "moim", "the server -url points at: moim, or centrifugo (the peer Moim is measured against: the same users, rooms, pacing and bodies over Centrifugo's JSON client protocol, each room a channel with history and recovery; no REST set-up, connection tokens signed with -centrifugo-secret)")
	cfSecret := fs.String("centrifugo-secret", "", "with -target centrifugo: the peer's client.token.hmac_secret_key, to sign each user's HS256 connection token")
	storm := fs.Bool("storm", false, "measure a connection storm instead of traffic: per stage (users; its rate is ignored), dial every WebSocket at once into fresh rooms and time each from its ready until it receives its room's messages, probed over REST (POST /api/rooms/{id}/messages) every -storm-probe; reports connect-to-live p50/p99/max and how many took longer than -storm-limit (the verdict)")
	stormProbe := fs.Duration("storm-probe", 100*time.Millisecond, "with -storm: how often each room not yet all live gets a probe message")
	stormLimit := fs.Duration("storm-limit", time.Second, "with -storm: every connection must be live within this of its ready")
	pushSubs := fs.Int("push-subs", 0, "subscribe every Nth connected user (the 1st, N+1th, …: one per room when N is -room-size) to Web Push through POST /api/push/subscriptions, as the web client does, with an endpoint on -push-sink (the node needs MOIM_PUSH_LOOPBACK=true). The node pushes only to members with no live connection, so these are never posted to: they make their rooms watched (every message gathered, each window's subscribed members and their presence looked up), which is what a room with a subscriber costs while everyone is at it. 0: none")
	pushAway := fs.Int("push-away", 0, "add N members to every room who never connect, each subscribed to Web Push like -push-subs: the node encrypts and posts every room's messages (one push per member per MOIM_PUSH_WINDOW, more for mentions) to them, as to a club's members who are not looking. They are not measured (no deliveries expected); the pushes the sink received are reported. Named PREFIXa00001…, reused by later runs. 0: none")
	mentions := fs.Float64("mentions", 0, "fraction (0 to 1) of message bodies that name another member of the room, connected or away, picked at random, as @username after the timestamp and cid: the node resolves each against the room's members at send time (hub/mentions.go) and pushes a named away member even in a muted room. Reported: mentions sent, and how many came back to their sender resolved")
	pushWait := fs.Duration("push-wait", 0, "with -push-subs or -push-away: after the drain, keep every connection open this much longer (the users stay present) and count the pushes of the windows still open, e.g. the node's MOIM_PUSH_WINDOW plus a second; the node's CPU over it (its push work for the stage's messages) is counted with the stage's. 0: pushes of a window open at the drain's end are not counted")
	pushSink := fs.String("push-sink", "127.0.0.1:0", "loopback host:port of the push service loadgen serves for -push-subs and -push-away (port 0 picks one). Endpoints are http://ADDR/push/USERNAME: give a fixed port when runs repeat on one node's data, so each run's subscription replaces the last instead of leaving one behind that the node keeps posting to")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o := &options{
		roomSize: *roomSize, duration: *duration, drain: *drain, settle: *settle,
		prefix: *prefix, password: *password, bodySize: *bodySize, sources: *sources,
		dialConc: *dialConc, setupConc: *setupConc, senders: *senders,
		warmup: *warmup, warmupConc: *warmupConc, historyCheck: *historyCheck, historyTimeout: *historyTimeout,
		reconnect: *reconnect, storeURI: *storeCheck, timeline: *timeline, cpuProfile: *cpuProfile,
		target: *tgt, cfSecret: []byte(*cfSecret),
		storm: *storm, stormProbe: *stormProbe, stormLimit: *stormLimit,
		pushSubs: *pushSubs, pushAway: *pushAway, mentions: *mentions, pushSink: *pushSink, pushWait: *pushWait,
	}
	switch {
	case o.pushSubs < 0 || o.pushAway < 0 || o.pushWait < 0:
		return nil, errors.New("-push-subs, -push-away and -push-wait must not be negative")
	case !(o.mentions >= 0 && o.mentions <= 1):
		return nil, errors.New("-mentions must be a fraction from 0 to 1")
	case (o.pushSubs > 0 || o.pushAway > 0 || o.mentions > 0) && (o.target != "moim" || o.storm):
		return nil, errors.New("-push-subs, -push-away and -mentions drive Moim's traffic only (not -target centrifugo or -storm)")
	}
	if host, _, err := net.SplitHostPort(o.pushSink); err != nil || !apiclient.IsLoopback(host) {
		return nil, fmt.Errorf("-push-sink must be a loopback host:port (the node posts there with MOIM_PUSH_LOOPBACK=true), got %q", o.pushSink)
	}
	if o.storm && (o.target != "moim" || *reconnect || *historyCheck || *storeCheck != "") {
		return nil, errors.New("-storm drives Moim only, without -reconnect, -history-check or -store-check")
	}
	if *stormProbe <= 0 || *stormLimit <= 0 {
		return nil, errors.New("-storm-probe and -storm-limit must be positive")
	}
	switch {
	case o.target == "centrifugo":
		if len(o.cfSecret) == 0 {
			return nil, errors.New("-target centrifugo needs -centrifugo-secret (the peer's client.token.hmac_secret_key)")
		}
		// These read or drive Moim's own API and store: the peer has no
		// equivalent the generator could compare.
		if *reconnect || *historyCheck || *storeCheck != "" || *alsoMembers != "" {
			return nil, errors.New("-reconnect, -history-check, -store-check and -also-members are for -target moim only")
		}
	case o.target != "moim":
		return nil, fmt.Errorf("-target must be moim or centrifugo, got %q", o.target)
	}
	o.bind = true
	for _, raw := range strings.Split(*rawURL, ",") {
		base, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(raw), "/"))
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return nil, fmt.Errorf("-url must be http(s)://host:port, comma-separated for several nodes, got %q", raw)
		}
		scheme := "ws"
		if base.Scheme == "https" {
			scheme = "wss"
		}
		o.bases = append(o.bases, base)
		if o.target == "centrifugo" {
			o.wsBases = append(o.wsBases, scheme+"://"+base.Host+base.Path+cfPath)
		} else {
			o.wsBases = append(o.wsBases, scheme+"://"+base.Host+base.Path+"/ws?token=")
		}
		o.bind = o.bind && apiclient.IsLoopback(base.Hostname())
	}
	for _, p := range strings.Split(*alsoMembers, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("-also-members: %q is not a user id", p)
		}
		o.alsoMembers = append(o.alsoMembers, id)
	}

	if *stages != "" {
		for _, part := range strings.Split(*stages, ",") {
			u, r, ok := strings.Cut(strings.TrimSpace(part), ":")
			n, err1 := strconv.Atoi(u)
			f, err2 := strconv.ParseFloat(r, 64)
			if !ok || err1 != nil || err2 != nil || n < 1 || f <= 0 {
				return nil, fmt.Errorf("-stages: %q is not users:rate with users ≥ 1 and rate > 0", part)
			}
			o.stages = append(o.stages, stageSpec{n, f})
		}
	} else {
		if *users < 1 || *rate <= 0 {
			return nil, errors.New("-users must be at least 1 and -rate above 0")
		}
		o.stages = []stageSpec{{*users, *rate}}
	}
	switch {
	case o.roomSize < 1 || o.roomSize+len(o.alsoMembers)+o.pushAway > 1001:
		return nil, errors.New("-room-size plus the -also-members and -push-away must be 1 to 1001 (a room is created with at most 1000 member_ids)")
	case o.duration <= 0:
		return nil, errors.New("-duration must be positive")
	case o.drain < 0 || o.settle < 0 || o.historyTimeout <= 0:
		return nil, errors.New("-drain and -settle must not be negative, -history-timeout must be positive")
	case !prefixRE.MatchString(o.prefix):
		return nil, errors.New("-prefix must be 1 to 27 characters of a-z, 0-9, '_', '.' or '-' (usernames are at most 32)")
	case len(o.password) < 8 || len(o.password) > 72:
		return nil, errors.New("-password must be 8 to 72 bytes")
	case o.bodySize < 0 || o.bodySize > 4000:
		return nil, errors.New("-body-size must be 0 to 4000")
	case o.sources < 0 || o.sources > 1<<24-2:
		return nil, errors.New("-sources must be 0 to 16777214")
	case o.dialConc < 1 || o.setupConc < 1 || o.senders < 1 || o.warmupConc < 1:
		return nil, errors.New("-dial-concurrency, -setup-concurrency, -warmup-concurrency and -senders must be positive")
	}
	maxUsers := 0
	for _, s := range o.stages {
		maxUsers = max(maxUsers, s.users)
	}
	if o.pushAway > 0 && len(o.prefix) > 26 {
		return nil, errors.New("-prefix too long for away users' names (PREFIXa00001)")
	}
	if maxUsers > 99999 && len(o.prefix) > 26 {
		return nil, errors.New("-prefix too long for six-digit user numbers")
	}
	if o.sources == 0 {
		o.sources = (maxUsers + perSource - 1) / perSource
	}
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-pid: %q is not a PID", p)
		}
		if _, err := readProc(n); err != nil {
			return nil, fmt.Errorf("-pid %d: %v", n, err)
		}
		switch name := procName(n); name {
		case "bash", "sh", "dash", "zsh", "env", "go":
			logf("WARNING: -pid %d is %q, not the node itself (a wrapper's PID?); its CPU and RSS are not the node's", n, name)
		}
		o.pids = append(o.pids, n)
	}
	for _, l := range strings.Split(*limits, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(l))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("-limits: %q is not a positive duration", l)
		}
		o.limits = append(o.limits, d)
	}
	return o, nil
}

func run(args []string) int {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		logf("%v", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A chaos driver marks the window it breaks something in.
	marks := make(chan os.Signal, 4)
	signal.Notify(marks, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(marks)

	maxUsers := 0
	for _, s := range o.stages {
		maxUsers = max(maxUsers, s.users)
	}
	logf("%s", nofile.Raise(maxUsers+o.setupConc+256))
	if !o.bind && o.sources > 1 {
		logf("a -url is not loopback: dialing from the default source address, -sources ignored")
	}
	lg := &loadgen{
		o: o,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 2 * o.setupConc, MaxIdleConnsPerHost: 2 * o.setupConc, IdleConnTimeout: 30 * time.Second,
		}},
		runID: strconv.FormatUint(rand.Uint64()&0xffffffffff, 36),
	}
	lg.tgt = moimTarget{lg}
	if o.target == "centrifugo" {
		lg.tgt = newCentrifugoTarget(lg)
	}
	lg.historyLimit.Store(historyPage)
	if o.pushSubs > 0 || o.pushAway > 0 {
		if lg.sink, err = startPushSink(o.pushSink, o.prefix+"a"); err != nil {
			logf("%v", err)
			return 1
		}
		defer lg.sink.close()
		logf("push sink on http://%s/push/", lg.sink.addr)
	}
	go func() {
		for sig := range marks {
			if st := lg.current.Load(); st != nil {
				st.fault.mark(sig == syscall.SIGUSR1)
				logf("fault window %s", map[bool]string{true: "opened", false: "closed"}[sig == syscall.SIGUSR1])
			}
		}
	}()
	if o.storm {
		return lg.runStorms(ctx)
	}
	var results []*result
	for i, spec := range o.stages {
		if ctx.Err() != nil {
			break
		}
		r := lg.runStage(ctx, i+1, spec)
		results = append(results, r)
		if r.Failure != "" && r.Sent == 0 {
			logf("stage %d failed before sending; skipping the rest", i+1)
			break
		}
	}
	pass := len(results) == len(o.stages) && ctx.Err() == nil
	for _, r := range results {
		r.print(os.Stdout, o.limits)
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

// runStage runs one stage from set-up to verdict.
func (lg *loadgen) runStage(ctx context.Context, n int, spec stageSpec) *result {
	o := lg.o
	res := &result{
		Stage: n, Users: spec.users, RoomSize: o.roomSize, DurationS: o.duration.Seconds(),
		TargetRate: spec.rate, Errors: map[string]int64{},
	}
	fail := func(format string, args ...any) *result {
		res.Failure = fmt.Sprintf(format, args...)
		logf("stage %d: %s", n, res.Failure)
		res.judge(o.limits)
		return res
	}
	hint := "; the node's MOIM_SEND_RATE and MOIM_SEND_LIMIT must be above that"
	if o.target != "moim" {
		hint = ""
	}
	logf("stage %d: %s, %d users in rooms of %d, %g msg/s for %s (each user sends %.3g/s%s)",
		n, o.target, spec.users, o.roomSize, spec.rate, o.duration, spec.rate/float64(spec.users), hint)
	setup := time.Now()
	accts, err := lg.tgt.accounts(ctx, spec.users)
	if err != nil {
		return fail("set up users: %v", err)
	}
	var away []*account
	if o.pushAway > 0 {
		rooms := (len(accts) + o.roomSize - 1) / o.roomSize
		if away, err = lg.ensureAway(ctx, rooms*o.pushAway); err != nil {
			return fail("set up away users: %v", err)
		}
	}
	var pushedBefore, pushedAfter sinkCounts
	if lg.sink != nil {
		pushedBefore = lg.sink.counts()
	}
	st := newStage(ctx, lg, n, spec, accts, away)
	lg.current.Store(st)
	defer lg.current.Store(nil)
	res.Rooms = len(st.rooms)
	defer st.closeAll()
	if err := lg.tgt.createRooms(ctx, st); err != nil {
		return fail("create rooms: %v", err)
	}
	if err := lg.dialAll(ctx, st, o.dialConc); err != nil {
		return fail("open WebSockets: %v", err)
	}
	res.SetupS = round2(time.Since(setup).Seconds())
	if o.warmup {
		res.Warmup = lg.warmup(ctx, st)
	}
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
	}
	// Errors while connecting count; say so now, as they are not traffic.
	before := st.errs.snapshot()
	if len(before) > 0 {
		logf("stage %d: errors before sending, counted: %s", n, formatErrors(before))
	}

	watch := startProcWatch(o.pids)
	stopProfile := lg.profileStage(n)
	stopProgress, progressDone := make(chan struct{}), make(chan struct{})
	logf("stage %d: sending", n)
	st.sendStart = time.Now()
	go st.progress(stopProgress, progressDone)
	st.pace(ctx)
	waited, drained := st.drain(ctx)
	res.DrainS, res.DrainTimedOut = round2(waited.Seconds()), !drained
	// Before the connections close: from then on every user is away.
	if lg.sink != nil {
		if o.pushWait > 0 {
			logf("stage %d: waiting %s for the pushes of windows still open", n, o.pushWait)
			select {
			case <-time.After(o.pushWait):
			case <-ctx.Done():
			}
		}
		pushedAfter = lg.sink.counts()
	}
	close(stopProgress)
	<-progressDone
	stopProfile()
	st.closeAll()
	res.Procs, res.LoadgenCPUS = watch.finish(st.delivered.Load())
	res.Host = watch.host(res.Procs, res.LoadgenCPUS)
	res.LoadgenCPUS = round2(res.LoadgenCPUS)
	for i := range res.Procs {
		res.Procs[i].CPUSeconds = round2(res.Procs[i].CPUSeconds)
	}

	acked := st.ackedSeqs()
	st.evaluate(res, acked)
	res.Sent, res.Acked, res.NotSent = st.sent.Load(), st.acked.Load(), st.notSent.Load()
	res.Received, res.Foreign = st.delivered.Load(), st.foreign.Load()
	res.OutOfOrder = st.outOfOrder.Load()
	if o.reconnect {
		res.Recovery = &recoveryResult{
			Reconnects: st.reconnects.Load(), RedialFailures: st.redialFailures.Load(), Refused: st.refused.Load(), Busy: st.busy.Load(),
			Resends: st.resends.Load(), Syncs: st.syncs.Load(), Gaps: st.gaps.Load(), LateAcks: st.lateAcks.Load(),
		}
	}
	res.Fault = st.fault.result(st.sendStart, st.sendEndTime())
	res.Timeline = st.timeline
	// The window is the whole duration unless an interrupt cut it short.
	window := min(o.duration, st.sendEndTime().Sub(st.sendStart))
	res.AchievedRate = round2(float64(res.Sent) / max(window.Seconds(), 1e-3))
	if ctx.Err() != nil {
		res.Failure = "interrupted"
	}
	res.Behind = res.AchievedRate < 0.98*spec.rate
	if res.Behind {
		logf("stage %d: behind: achieved %.0f/s of %g/s target", n, res.AchievedRate, spec.rate)
	}
	if o.historyCheck && ctx.Err() == nil {
		logf("stage %d: checking the history of %d rooms", n, len(st.rooms))
		res.History = lg.checkHistory(ctx, st, acked)
	}
	if o.storeURI != "" && ctx.Err() == nil {
		logf("stage %d: checking the message store for %d rooms", n, len(st.rooms))
		res.Store = lg.checkStore(ctx, st, acked)
	}
	if lg.sink != nil || o.mentions > 0 {
		p := &pushResult{Away: len(away), MentionsSent: st.mentionsSent.Load(), MentionsResolved: st.mentionsResolved.Load()}
		for _, a := range accts {
			if a.subscribed {
				p.SubscribedOnline++
			}
		}
		p.Pushes, p.Urgent = pushedAfter.pushes-pushedBefore.pushes, pushedAfter.urgent-pushedBefore.urgent
		p.ToConnected = pushedAfter.connected - pushedBefore.connected
		res.Push = p
	}
	res.Errors = st.errs.snapshot()
	res.ErrorsTotal = st.errs.total.Load()
	res.Latency = st.lat.summary()
	res.AckLatency = st.ackLat.summary()
	if st.socketLat.n.Load() > 0 {
		sl := st.socketLat.summary()
		res.SocketLatency = &sl
	}
	if neg := st.lat.neg.Load(); neg > 0 {
		logf("stage %d: %d deliveries arrived before they were sent (clock step?); counted as 0 ms", n, neg)
	}
	res.judge(o.limits)
	return res
}
