#!/usr/bin/env bash
# pushbench.sh: chat latency and node CPU with the club's pushes and
# mentions off and on, on the zero-setup node, alternately, same build.
#
#   scripts/pushbench.sh [STAGE] [-- extra loadgen flags]
#   scripts/pushbench.sh                       # 1000:1000, 3 pairs of 20 s runs
#   RUNS=1 DURATION=5s WARMUP=3s scripts/pushbench.sh 50:50
#
# Each run starts a fresh node (a new data directory, the load-test
# settings of loadgen's doc comment and MOIM_PUSH_LOOPBACK=true in both
# modes, so the node is the same and only the traffic differs), runs a
# warm-up of WARMUP with the run's own flags (signs the users up,
# subscribes them, warms the node), waits out the push window the warm-up
# left open, then measures STAGE for DURATION with -pid on the node and
# stops it by its PID.
#
#   off: plain chat: nobody subscribed, no body names anyone.
#   on:  PUSH_FLAGS (default -push-subs 10 -push-away 1 -mentions 0.1):
#        every tenth user (one per room of 10) has a Web Push
#        subscription, so every room is watched; each room has one more
#        member, subscribed and never connected, whom the node pushes every
#        room's messages to (one push per window, urgent ones for
#        mentions), as to a club member who is not looking; a tenth of
#        the bodies name another member (@username), resolved at send time.
#        The pushes go to a sink loadgen serves on a port fixed for the
#        whole script, so each run's subscriptions replace its warm-up's.
#        After the drain the users stay connected PUSH_WAIT (default 6s:
#        the node's 5 s window plus one) so the last window's pushes, and
#        the node's CPU for them, are counted with the run.
#
# Runs alternate off/on, then on/off (ABBA), RUNS pairs in all, so a
# drift of the host weighs on both modes alike. It prints every run's
# loadgen output, then one Markdown table: delivery p50/p99/max, ack p99,
# node CPU per 1000 deliveries, lost, pushes received and mentions
# resolved per run, with the host's load average at each run's start,
# and the median of each mode. Figures mean something on a quiet host
# only (load average well under the cores).
#
# Environment: RUNS (pairs, default 3), DURATION (20s), WARMUP (10s),
# ROOM_SIZE (10), DRAIN (3s), PAUSE (seconds between warm-up and
# measurement, default 6: the node's push window of 5 s plus one),
# PUSH_FLAGS, PUSH_WAIT, MOIM_BIN (a server binary to measure instead of building
# this tree's), OUT (directory for logs, default a new temporary one).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=pidfile.sh
. "$here/pidfile.sh"

stage=${1:-1000:1000}
shift || true
[ "${1:-}" = "--" ] && shift
extra=("$@")
case $stage in
*,*) echo "pushbench: one stage (users:rate), got $stage" >&2; exit 2 ;;
esac
runs=${RUNS:-3}
duration=${DURATION:-20s}
warmup=${WARMUP:-10s}
room_size=${ROOM_SIZE:-10}
drain=${DRAIN:-3s}
pause=${PAUSE:-6}
read -r -a push_flags <<<"${PUSH_FLAGS:--push-subs 10 -push-away 1 -mentions 0.1} -push-wait ${PUSH_WAIT:-6s}"
out=${OUT:-$(mktemp -d /tmp/pushbench.XXXXXX)}
mkdir -p "$out"

cleanup() {
	stop_pid "$out/moim.pid"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "pushbench: building into $out" >&2
if [ -n "${MOIM_BIN:-}" ]; then
	cp "$MOIM_BIN" "$out/moim"
else
	(cd "$root" && go build -o "$out/moim" ./server)
fi
(cd "$root" && go build -o "$out/loadgen" ./scripts/loadgen)

sink="127.0.0.1:$(free_port)"
common=(-stages "$stage" -room-size "$room_size" -drain "$drain" -push-sink "$sink")

# run MODE NAME: one fresh node, a warm-up, a measured stage; the
# measured output goes to $out/NAME.out.
run() {
	local mode=$1 name=$2 flags=()
	[ "$mode" = on ] && flags=("${push_flags[@]}")
	local port
	port=$(free_port)
	(
		ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
		exec env MOIM_BCRYPT_COST=4 MOIM_SEND_RATE=1000 MOIM_SEND_BURST=1000 MOIM_SEND_LIMIT=off \
			MOIM_SIGNUP_LIMIT=off MOIM_UPGRADE_LIMIT=off MOIM_INVITE_RULE=anyone MOIM_PUSH_LOOPBACK=true \
			MOIM_DATA_DIR="$out/$name-data" MOIM_ADDR="127.0.0.1:$port" "$out/moim"
	) >"$out/$name.node.log" 2>&1 &
	echo $! >"$out/moim.pid"
	local url="http://127.0.0.1:$port" pid
	pid=$(cat "$out/moim.pid")
	for _ in $(seq 1 300); do
		curl -sf -o /dev/null "$url/readyz" && break
		kill -0 "$pid" 2>/dev/null || { echo "pushbench: the node exited; see $out/$name.node.log" >&2; return 1; }
		sleep 0.2
	done
	curl -sf -o /dev/null "$url/readyz" || { echo "pushbench: the node is not ready after 60 s; see $out/$name.node.log" >&2; return 1; }
	echo "pushbench: $name: node pid $pid on $url, warming up for $warmup" >&2
	"$out/loadgen" -url "$url" "${common[@]}" -duration "$warmup" -limits 60s "${flags[@]}" "${extra[@]}" \
		>"$out/$name.warmup.out" 2>"$out/$name.warmup.log" || echo "pushbench: $name: the warm-up did not pass; see $out/$name.warmup.*" >&2
	sleep "$pause"
	local load
	load=$(cut -d' ' -f1 /proc/loadavg)
	echo "pushbench: $name: measuring $stage for $duration, load average $load" >&2
	"$out/loadgen" -url "$url" -pid "$pid" "${common[@]}" -duration "$duration" "${flags[@]}" "${extra[@]}" \
		>"$out/$name.out" 2>"$out/$name.loadgen.log" || status=1
	echo "$load" >"$out/$name.load"
	stop_pid "$out/moim.pid"
}

status=0
names=()
for i in $(seq 1 "$runs"); do
	order=(off on)
	[ $((i % 2)) -eq 0 ] && order=(on off)
	for mode in "${order[@]}"; do
		run "$mode" "$mode$i"
		names+=("$mode$i")
	done
done

for n in "${names[@]}"; do
	echo "===== $n ====="
	cat "$out/$n.out"
done
echo
echo "Pushes and mentions off and on ($stage, rooms of $room_size, $duration per run after a $warmup warm-up; on: ${push_flags[*]}; logs in $out):"
echo
python3 - "$out" "${names[@]}" <<'EOF'
import json, statistics, sys

out, names = sys.argv[1], sys.argv[2:]

def ms(v):
    # as loadgen's tables: three significant digits or so
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v

rows = []
for name in names:
    r = None
    for line in open("%s/%s.out" % (out, name)):
        if line.startswith("{"):
            r = json.loads(line)
    load = open("%s/%s.load" % (out, name)).read().strip()
    rows.append((name, load, r))

print("| run | load average | delivery p50 / p99 / max | ack p99 | node CPU per 1000 deliveries | lost | pushes received (urgent) | mentions sent / resolved |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
by_mode = {"off": [], "on": []}
for name, load, r in rows:
    if r is None:
        print("| %s | %s | no result (see %s/%s.loadgen.log) | | | | | |" % (name, load, out, name))
        continue
    lat, ack = r["latency_ms"], r["ack_latency_ms"]
    cpu = sum(p.get("cpu_ms_per_1000_deliveries", 0) for p in r.get("procs") or [])
    p = r.get("push") or {}
    pushes = "%d (%d)" % (p.get("pushes_received", 0), p.get("urgent_pushes", 0)) if p else "—"
    mentions = "%d / %d" % (p.get("mentions_sent", 0), p.get("mentions_resolved", 0)) if p else "—"
    note = " (failed: %s)" % r["failure"] if r.get("failure") else ""
    print("| %s%s | %s | %s / **%s** / %s ms | %s ms | %.1f ms | %d | %s | %s |" % (
        name, note, load, ms(lat["p50"]), ms(lat["p99"]), ms(lat["max"]), ms(ack["p99"]), cpu, r["lost"], pushes, mentions))
    by_mode[name.rstrip("0123456789")].append((lat, ack, cpu, r["lost"]))
for mode, rs in by_mode.items():
    if not rs:
        continue
    med = lambda f: statistics.median(f(x) for x in rs)
    print("| median of %d %s | | %s / **%s** / %s ms | %s ms | %.1f ms | %d in all | | |" % (
        len(rs), mode, ms(med(lambda x: x[0]["p50"])), ms(med(lambda x: x[0]["p99"])), ms(med(lambda x: x[0]["max"])),
        ms(med(lambda x: x[1]["p99"])), med(lambda x: x[2]), sum(x[3] for x in rs)))
EOF
exit $status
