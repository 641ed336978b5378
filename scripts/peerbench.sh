#!/usr/bin/env bash
# peerbench.sh: Moim's zero-setup node and Centrifugo's memory engine side
# by side, same workload, same host, same run; or, with NODES=N, N Moim
# nodes and N Centrifugo nodes, each on the same redis-server.
#
#   scripts/peerbench.sh [STAGES] [-- extra loadgen flags]
#   scripts/peerbench.sh 1000:1000,5000:5000
#   DURATION=10s scripts/peerbench.sh 200:200 -- -drain 10s
#   NODES=3 scripts/peerbench.sh 3000:3000
#
# It builds the server and scripts/loadgen, starts a fresh zero-setup node
# (no MOIM_REDIS_URL: the in-process engine, every message committed to
# SQLite before its ack) with a throwaway data directory, runs the stages
# against it with -pid on the node, stops it, then starts Centrifugo with
# scripts/centrifugo.json (memory engine, history and recovery on every
# channel) and runs the same stages with -target centrifugo. It prints
# loadgen's tables and JSON lines for each, then one Markdown table of
# both ("(drain timed out)" beside a lost count: the drain ran out before
# everything arrived, so part of that count may have been in flight; "p99
# at the socket": the delivery p99 up to the kernel's receive time in the
# generator's socket, without the generator's own wait to read). Every
# process it starts is stopped by its PID on exit.
#
# NODES=N (N > 1), or ENGINE=redis with any N, measures the Redis path instead: it starts one
# redis-server and MariaDB (scripts/services.sh), then N Moim nodes on
# them, and afterwards N Centrifugo nodes with its Redis engine on the
# same redis-server (scripts/centrifugo.json with the engine set by
# environment). Where Moim's batcher stores messages is STORE: sqlite
# (one node's default: no MOIM_MONGO_URI, so messages.db in the node's
# data directory, what a single node on Redis runs with) or ferretdb (more
# nodes' default and only choice: one FerretDB, scripts/ferretdb, the
# MongoDB-wire stand-in every node shares). loadgen spreads the users
# round-robin over the N nodes and measures the CPU of every server
# process: the nodes, redis-server and, for Moim, FerretDB; a second table
# splits each server's CPU by process and lists what redis-server ran per
# message sent (INFO commandstats, zeroed before each server's run and
# saved after it in OUT/NAME.commandstats). PPROF=1 gives
# each Moim node MOIM_PPROF_ADDR on a free port (printed).
#
# ROUNDS=N (N > 1) runs both servers N times, each round with fresh
# processes and state, alternating which goes first (odd rounds Moim,
# even rounds the peer), and ends with a table per stage: each side's p99
# in every round, the rounds in which Moim's was at most the peer's, and
# the medians of p99 and of the CPU ratio; each round's files in OUT are
# named NAME.rR.* (NAME.* with one round). On a shared host whose
# neighbours come and go, one run's verdict can be the host's, and a
# fixed order gives the later server the later host.
#
# Centrifugo is a benchmark peer, never vendored or imported; get it with
#   GOBIN=/tmp/peerbin go install github.com/centrifugal/centrifugo/v6@v6.9.1
# Environment: CENTRIFUGO_BIN (default /tmp/peerbin/centrifugo), DURATION
# (per stage, default 30s), ROOM_SIZE (10), DRAIN (loadgen's -drain, 5s),
# OUT (directory for the logs, default a new temporary one), MOIM_BIN (a
# server binary to measure instead of building this tree's, e.g. an older
# build for a before/after), NODES (1), ENGINE (memory with one node,
# redis with more), STORE (above), RECONNECT (set: Moim's clients run as the protocol's
# reference client, loadgen -reconnect, resending sends refused as busy
# after the wait the node names; the peer's client has no such refusal).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=pidfile.sh
. "$here/pidfile.sh"

stages=${1:-200:200}
shift || true
[ "${1:-}" = "--" ] && shift
extra=("$@")
duration=${DURATION:-30s}
room_size=${ROOM_SIZE:-10}
drain=${DRAIN:-5s}
rounds=${ROUNDS:-1}
cf_bin=${CENTRIFUGO_BIN:-/tmp/peerbin/centrifugo}
out=${OUT:-$(mktemp -d /tmp/peerbench.XXXXXX)}
mkdir -p "$out"

if [ ! -x "$cf_bin" ]; then
	echo "peerbench: no Centrifugo at $cf_bin; install it with" >&2
	echo "  GOBIN=/tmp/peerbin go install github.com/centrifugal/centrifugo/v6@v6.9.1" >&2
	exit 2
fi

case "$rounds" in
''|*[!0-9]*|0) echo "peerbench: ROUNDS is a number of rounds, 1 or more, not '$rounds'" >&2; exit 2 ;;
esac

nodes=${NODES:-1}
engine=${ENGINE:-$([ "$nodes" -gt 1 ] && echo redis || echo memory)}
if [ "$nodes" -gt 1 ] && [ "$engine" != redis ]; then
	echo "peerbench: $nodes nodes share state only through Redis; ENGINE=memory needs NODES=1" >&2
	exit 2
fi
store=${STORE:-$([ "$nodes" -gt 1 ] && echo ferretdb || echo sqlite)}
if [ "$engine" = redis ] && [ "$store" != ferretdb ] && { [ "$store" != sqlite ] || [ "$nodes" -gt 1 ]; }; then
	echo "peerbench: STORE is sqlite (one node only: messages.db is the node's own) or ferretdb, not $store with $nodes node(s)" >&2
	exit 2
fi
cleanup() {
	for i in $(seq 1 "$nodes"); do
		stop_pid "$out/moim$i.pid"
		stop_pid "$out/centrifugo$i.pid"
	done
	stop_pid "$out/ferretdb.pid"
	[ -d "$out/svc" ] && "$here/services.sh" stop "$out/svc"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The node and the peer both get as many descriptors as the host allows
# (each user is one connection).
raise_nofile() { ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"; }

# wait_http URL PIDFILE: until URL answers 200, or the process died.
wait_http() {
	for _ in $(seq 1 300); do
		curl -sf -o /dev/null "$1" && return 0
		kill -0 "$(cat "$2")" 2>/dev/null || { echo "peerbench: process of $2 exited; see its log in $out" >&2; return 1; }
		sleep 0.2
	done
	echo "peerbench: $1 not ready after 60 s" >&2
	return 1
}

echo "peerbench: building into $out" >&2
if [ -n "${MOIM_BIN:-}" ]; then
	cp "$MOIM_BIN" "$out/moim"
else
	(cd "$root" && go build -o "$out/moim" ./server)
fi
(cd "$root" && go build -o "$out/loadgen" ./scripts/loadgen)

common=(-stages "$stages" -room-size "$room_size" -duration "$duration" -drain "$drain")

# The Redis path: one redis-server and MariaDB shared by every node of
# both servers (Centrifugo uses only Redis), and FerretDB with
# STORE=ferretdb.
redis_env=()
store_pids=()
mongo=""
if [ "$engine" = redis ]; then
	"$here/services.sh" start "$out/svc" >"$out/svc.env"
	# shellcheck disable=SC1091
	. "$out/svc.env"
	mariadb --socket="$out/svc/mysql.sock" -uroot -e 'CREATE DATABASE IF NOT EXISTS moim'
	redis_env=(MOIM_REDIS_URL="$MOIM_TEST_REDIS_URL" MOIM_MYSQL_DSN="${MOIM_TEST_MYSQL_DSN}moim"
		MOIM_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '/+=')")
	store_pids=("$(cat "$out/svc/redis.pid")")
	echo "peerbench: redis $MOIM_TEST_REDIS_URL (pid ${store_pids[0]}), messages stored in $store" >&2
	if [ "$store" = ferretdb ]; then
		(cd "$root" && go build -o "$out/ferretdb" ./scripts/ferretdb)
		"$out/ferretdb" -addr "127.0.0.1:$(free_port)" -dir "$out/ferretdb-data" >"$out/ferretdb.out" 2>"$out/ferretdb.log" </dev/null &
		echo $! >"$out/ferretdb.pid"
		for _ in $(seq 1 300); do grep -qs '^ready ' "$out/ferretdb.out" && break; sleep 0.2; done
		mongo=$(sed -n 's/^ready //p' "$out/ferretdb.out")
		[ -n "$mongo" ] || { echo "peerbench: FerretDB did not start; see $out/ferretdb.log" >&2; exit 1; }
		store_pids+=("$(cat "$out/ferretdb.pid")")
		echo "peerbench: FerretDB $mongo (pid ${store_pids[1]})" >&2
	fi
fi
join() { local IFS=,; echo "$*"; }

# redis_stats reset|save NAME: on the Redis path, zeroes redis-server's
# per-command counters before a server's run and saves them after it
# (NAME.commandstats), for the table of Redis work per message below.
redis_stats() {
	[ "$engine" = redis ] || return 0
	if [ "$1" = reset ]; then
		redis-cli -u "$MOIM_TEST_REDIS_URL" CONFIG RESETSTAT >/dev/null
	else
		redis-cli -u "$MOIM_TEST_REDIS_URL" INFO commandstats >"$out/$2.commandstats"
	fi
}

# fresh_state: on the Redis path, an empty redis-server and Moim database
# before each server's run, so every round starts alike.
fresh_state() {
	[ "$engine" = redis ] || return 0
	redis-cli -u "$MOIM_TEST_REDIS_URL" FLUSHALL >/dev/null
	mariadb --socket="$out/svc/mysql.sock" -uroot -e 'DROP DATABASE IF EXISTS moim; CREATE DATABASE moim'
}

# measure NAME SUFFIX URLS PIDS [LOADGEN FLAGS]: one loadgen run against
# the started NAME processes (PIDS: theirs and their stores'), into
# NAMESUFFIX.out, with Redis's command counters around it; then stops
# them.
measure() {
	local name=$1 sfx=$2 urls=$3 pids=$4 i
	shift 4
	echo "peerbench: $name on $urls (pids $pids), load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	redis_stats reset
	"$out/loadgen" -url "$urls" -pid "$pids" "${common[@]}" "$@" "${extra[@]}" \
		>"$out/$name$sfx.out" 2>"$out/$name$sfx.loadgen.log" || status=1
	redis_stats save "$name$sfx"
	for i in $(seq 1 "$nodes"); do stop_pid "$out/$name$i.pid"; done
}

# run_moim SUFFIX: the zero-setup node (or NODES nodes on the Redis path),
# with the load-test settings loadgen's doc comment gives (cheap bcrypt, a
# send limit above one message a second per user, no sign-up or upgrade
# limits per address), one loadgen run into moimSUFFIX.out, then stopped.
# Each round gets fresh data directories (and FerretDB database).
run_moim() {
	local sfx=$1 urls=() pids=() env=("${redis_env[@]}") i port pprof
	[ -n "$mongo" ] && env+=(MOIM_MONGO_URI="${mongo%/}/moim${sfx//./_}")
	fresh_state
	for i in $(seq 1 "$nodes"); do
		port=$(free_port)
		pprof=()
		if [ -n "${PPROF:-}" ]; then
			pprof=(MOIM_PPROF_ADDR="127.0.0.1:$(free_port)")
			echo "peerbench: moim$i ${pprof[0]}" >&2
		fi
		(
			raise_nofile
			exec env MOIM_BCRYPT_COST=4 MOIM_SEND_RATE=1000 MOIM_SEND_BURST=1000 MOIM_SEND_LIMIT=off \
				MOIM_SIGNUP_LIMIT=off MOIM_UPGRADE_LIMIT=off MOIM_INVITE_RULE=anyone MOIM_NODE_ID="n$i" \
				MOIM_DATA_DIR="$out/moim-data$i$sfx" MOIM_ADDR="127.0.0.1:$port" "${env[@]}" "${pprof[@]}" "$out/moim"
		) >"$out/moim$i$sfx.log" 2>&1 &
		echo $! >"$out/moim$i.pid"
		wait_http "http://127.0.0.1:$port/readyz" "$out/moim$i.pid"
		urls+=("http://127.0.0.1:$port") pids+=("$(cat "$out/moim$i.pid")")
	done
	measure moim "$sfx" "$(join "${urls[@]}")" "$(join "${pids[@]}" "${store_pids[@]}")" "${moim_flags[@]}"
}

# run_peer SUFFIX: Centrifugo, memory engine (Redis engine on the same
# redis-server with NODES), port and token key from the environment over
# scripts/centrifugo.json; one loadgen run into centrifugoSUFFIX.out.
run_peer() {
	local sfx=$1 urls=() pids=() i port secret
	secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
	fresh_state
	for i in $(seq 1 "$nodes"); do
		port=$(free_port)
		(
			raise_nofile
			exec env CENTRIFUGO_HTTP_SERVER_PORT=$port CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY=$secret "${cf_env[@]}" \
				"$cf_bin" --config "$here/centrifugo.json"
		) >"$out/centrifugo$i$sfx.log" 2>&1 &
		echo $! >"$out/centrifugo$i.pid"
		wait_http "http://127.0.0.1:$port/health" "$out/centrifugo$i.pid"
		urls+=("http://127.0.0.1:$port") pids+=("$(cat "$out/centrifugo$i.pid")")
	done
	measure centrifugo "$sfx" "$(join "${urls[@]}")" "$(join "${pids[@]}" "${peer_pids[@]}")" -target centrifugo -centrifugo-secret "$secret"
}

status=0
moim_flags=()
[ -n "${RECONNECT:-}" ] && moim_flags=(-reconnect)
cf_env=() peer_pids=()
if [ "$engine" = redis ]; then
	cf_env=(CENTRIFUGO_ENGINE_TYPE=redis CENTRIFUGO_ENGINE_REDIS_ADDRESS="$MOIM_TEST_REDIS_URL")
	peer_pids=("${store_pids[0]}")
fi
# One round: the plain file names, as before rounds; more: NAME.rR.
suffixes=()
for r in $(seq 1 "$rounds"); do
	sfx=""
	[ "$rounds" -gt 1 ] && sfx=".r$r"
	suffixes+=("$sfx")
	if [ $((r % 2)) -eq 1 ]; then
		run_moim "$sfx"
		run_peer "$sfx"
	else
		run_peer "$sfx"
		run_moim "$sfx"
	fi
done

for sfx in "${suffixes[@]}"; do
	for t in moim centrifugo; do
		echo "===== $t${sfx:+ (round ${sfx#.r})} ====="
		cat "$out/$t$sfx.out"
	done
done
echo
echo "Side by side (rooms of $room_size, $duration per stage; logs in $out):"
echo
if [ "$engine" = redis ]; then
	names="Moim $nodes node(s), Redis, store $store|Centrifugo $nodes node(s), Redis engine"
	if [ "$store" = ferretdb ]; then
		echo "(CPU: every node, redis-server and, for Moim, FerretDB, summed)"
	else
		echo "(CPU: the node, its SQLite message store inside it, and redis-server, summed)"
	fi
	echo
else
	names="Moim zero-setup|Centrifugo memory"
fi
python3 - "$names" "$engine" "$out" "$rounds" <<'EOF'
import json, statistics, sys

names, engine, out, rounds = sys.argv[1].split("|"), sys.argv[2], sys.argv[3], int(sys.argv[4])

def ms(v):
    # as loadgen's tables: three significant digits or so
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v

def suffix(rnd):
    return ".r%d" % rnd if rounds > 1 else ""

def label(name, rnd, t):
    # which round, and whether this server ran first in it (odd rounds: Moim)
    if rounds == 1:
        return name
    first = (t == "moim") == (rnd % 2 == 1)
    return "%s, round %d (%s)" % (name, rnd, "first" if first else "second")

def cpu(r, key="cpu_ms_per_1000_deliveries"):
    return sum(p.get(key, 0) for p in r.get("procs") or [])

def p99(r):
    return r["latency_ms"]["p99"]

rows = []  # (stage, round, server: 0 Moim 1 peer, label, loadgen's JSON line)
for rnd in range(1, rounds + 1):
    for k, (t, name) in enumerate(zip(("moim", "centrifugo"), names)):
        for line in open("%s/%s%s.out" % (out, t, suffix(rnd))):
            if line.startswith("{"):
                r = json.loads(line)
                rows.append((r["stage"], rnd, k, label(name, rnd, t), r))
rows.sort(key=lambda x: x[:3])
print("| stage (users × msg/s) | server | sent / acked | deliveries expected / received | lost, dup, errors | delivery p50 / p99 / max | p99 at the socket | ack p99 | server CPU (ms per 1000 deliveries) | peak RSS | generator CPU | host busy (CPU of other work; stolen) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for _, _, _, name, r in rows:
    lat, ack = r["latency_ms"], r["ack_latency_ms"]
    sock = r.get("socket_latency_ms")
    sock = ms(sock["p99"]) + " ms" if sock else "—"
    errs = r["errors_total"]
    if r.get("errors"):
        errs = "%d (%s)" % (errs, ", ".join("%s=%d" % kv for kv in sorted(r["errors"].items())))
    stage = "%d × %g" % (r["users"], r["target_rate"])
    if r.get("failure"):
        stage += " (failed: %s)" % r["failure"]
    lost = str(r["lost"])
    if r.get("drain_timed_out") and r["lost"] > r.get("lost_to_dropped_connections", 0):
        lost += " (drain timed out)"
    print("| %s | %s | %d / %d | %d / %d | %s, %d, %s | %s / **%s** / %s ms | %s | %s ms | %.0f %% (%.1f) | %.0f MiB | %.1f s | %.0f %% (%.1f core-s; %.1f %%) |" % (
        stage, name, r["sent"], r["acked"], r["expected_deliveries"], r["received_deliveries"],
        lost, r["duplicates"], errs, ms(lat["p50"]), ms(lat["p99"]), ms(lat["max"]), sock, ms(ack["p99"]),
        cpu(r, "cpu_percent"), cpu(r), cpu(r, "peak_rss_kib") / 1024,
        r["loadgen_cpu_seconds"], r["host"].get("busy_percent", 0), r["host"].get("other_cpu_seconds", 0), r["host"].get("steal_percent", 0)))

if rounds > 1:
    # Per stage over the rounds: how often one run's verdict would go
    # each way, and the medians.
    print()
    print("| stage | Moim p99 by round (ms) | peer p99 by round (ms) | rounds with Moim's p99 ≤ the peer's | median p99, Moim / peer | median CPU per 1000, Moim / peer (median ratio) | lost, Moim / peer |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for stage in sorted({x[0] for x in rows}):
        by = {(x[1], x[2]): x[4] for x in rows if x[0] == stage}
        both = [(by[(rnd, 0)], by[(rnd, 1)]) for rnd in range(1, rounds + 1) if (rnd, 0) in by and (rnd, 1) in by]
        if not both:
            continue
        m, c = [a for a, _ in both], [b for _, b in both]
        ratios = [cpu(a) / cpu(b) for a, b in both if cpu(b) > 0]
        print("| %d × %g | %s | %s | %d of %d | %s / %s ms | %.1f / %.1f (%.2f×) | %d / %d |" % (
            m[0]["users"], m[0]["target_rate"], ", ".join(ms(p99(a)) for a in m), ", ".join(ms(p99(b)) for b in c),
            sum(p99(a) <= p99(b) for a, b in both), len(both),
            ms(statistics.median(map(p99, m))), ms(statistics.median(map(p99, c))),
            statistics.median(map(cpu, m)), statistics.median(map(cpu, c)), statistics.median(ratios) if ratios else 0,
            sum(a["lost"] for a in m), sum(b["lost"] for b in c)))

if engine != "redis":
    sys.exit(0)
# Where each server's CPU went (per process) and what Redis did per
# message sent: counted from just before its loadgen run to just after,
# so the stages' setup (sign-ups, rooms) is in it too. A script's time
# includes that of the commands it calls, which are also counted alone.
print()
print("| server | CPU per 1000 deliveries, by process | Redis commands per message sent: calls (µs per call) |")
print("| --- | --- | --- |")
for rnd in range(1, rounds + 1):
    for k, (t, name) in enumerate(zip(("moim", "centrifugo"), names)):
        mine = [x[4] for x in rows if x[1] == rnd and x[2] == k]
        sent = sum(r["sent"] for r in mine)
        by_stage = []
        for r in mine:
            procs = {}
            for p in r.get("procs") or []:
                procs[p.get("name", "?")] = procs.get(p.get("name", "?"), 0) + p.get("cpu_ms_per_1000_deliveries", 0)
            by_stage.append("%d × %g: %s" % (r["users"], r["target_rate"], ", ".join("%s %.1f" % kv for kv in procs.items())))
        stats = []
        try:
            for line in open("%s/%s%s.commandstats" % (out, t, suffix(rnd))):
                if line.startswith("cmdstat_"):
                    cmd, fields = line.strip()[len("cmdstat_"):].split(":", 1)
                    f = dict(kv.split("=") for kv in fields.split(","))
                    stats.append((int(f["usec"]), cmd, int(f["calls"]), float(f["usec_per_call"])))
        except OSError:
            pass
        stats.sort(reverse=True)
        per = lambda v: v / sent if sent else 0
        calls = ", ".join("%s %.2f (%.1f)" % (cmd, per(n), upc) for usec, cmd, n, upc in stats[:6])
        print("| %s | %s | %s |" % (label(name, rnd, t), "; ".join(by_stage), calls))
EOF
exit $status
