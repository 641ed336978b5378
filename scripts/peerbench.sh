#!/usr/bin/env bash
# peerbench.sh: Moim's zero-setup node and Centrifugo's memory engine side
# by side, same workload, same host, same run.
#
#   scripts/peerbench.sh [STAGES] [-- extra loadgen flags]
#   scripts/peerbench.sh 1000:1000,5000:5000
#   DURATION=10s scripts/peerbench.sh 200:200 -- -drain 10s
#
# It builds the server and scripts/loadgen, starts a fresh zero-setup node
# (no MOIM_REDIS_URL: the in-process engine, every message committed to
# SQLite before its ack) with a throwaway data directory, runs the stages
# against it with -pid on the node, stops it, then starts Centrifugo with
# scripts/centrifugo.json (memory engine, history and recovery on every
# channel) and runs the same stages with -target centrifugo. It prints
# loadgen's tables and JSON lines for each, then one Markdown table of
# both. Every process it starts is stopped by its PID on exit.
#
# Centrifugo is a benchmark peer, never vendored or imported; get it with
#   GOBIN=/tmp/peerbin go install github.com/centrifugal/centrifugo/v6@v6.9.1
# Environment: CENTRIFUGO_BIN (default /tmp/peerbin/centrifugo), DURATION
# (per stage, default 30s), ROOM_SIZE (10), DRAIN (loadgen's -drain, 5s),
# OUT (directory for the logs, default a new temporary one).
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
cf_bin=${CENTRIFUGO_BIN:-/tmp/peerbin/centrifugo}
out=${OUT:-$(mktemp -d /tmp/peerbench.XXXXXX)}
mkdir -p "$out"

if [ ! -x "$cf_bin" ]; then
	echo "peerbench: no Centrifugo at $cf_bin; install it with" >&2
	echo "  GOBIN=/tmp/peerbin go install github.com/centrifugal/centrifugo/v6@v6.9.1" >&2
	exit 2
fi

cleanup() {
	stop_pid "$out/moim.pid"
	stop_pid "$out/centrifugo.pid"
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
(cd "$root" && go build -o "$out/moim" ./server && go build -o "$out/loadgen" ./scripts/loadgen)

common=(-stages "$stages" -room-size "$room_size" -duration "$duration" -drain "$drain")

# Moim: the zero-setup node, with the load-test settings loadgen's doc
# comment gives (cheap bcrypt, a send limit above one message a second
# per user, no sign-up or upgrade limits per address).
port=$(free_port)
(
	raise_nofile
	MOIM_BCRYPT_COST=4 MOIM_SEND_RATE=1000 MOIM_SEND_BURST=1000 MOIM_SEND_LIMIT=off \
		MOIM_SIGNUP_LIMIT=off MOIM_UPGRADE_LIMIT=off MOIM_INVITE_RULE=anyone \
		MOIM_DATA_DIR="$out/moim-data" MOIM_ADDR="127.0.0.1:$port" exec "$out/moim"
) >"$out/moim.log" 2>&1 &
echo $! >"$out/moim.pid"
wait_http "http://127.0.0.1:$port/readyz" "$out/moim.pid"
echo "peerbench: moim on :$port (pid $(cat "$out/moim.pid")), load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
"$out/loadgen" -url "http://127.0.0.1:$port" -pid "$(cat "$out/moim.pid")" "${common[@]}" "${extra[@]}" \
	>"$out/moim.out" 2>"$out/moim.loadgen.log" || status=1
stop_pid "$out/moim.pid"

# Centrifugo: memory engine, port and token key from the environment
# over scripts/centrifugo.json.
port=$(free_port)
secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
(
	raise_nofile
	CENTRIFUGO_HTTP_SERVER_PORT=$port CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY=$secret \
		exec "$cf_bin" --config "$here/centrifugo.json"
) >"$out/centrifugo.log" 2>&1 &
echo $! >"$out/centrifugo.pid"
wait_http "http://127.0.0.1:$port/health" "$out/centrifugo.pid"
echo "peerbench: centrifugo on :$port (pid $(cat "$out/centrifugo.pid")), load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$out/loadgen" -target centrifugo -centrifugo-secret "$secret" -url "http://127.0.0.1:$port" \
	-pid "$(cat "$out/centrifugo.pid")" "${common[@]}" "${extra[@]}" \
	>"$out/centrifugo.out" 2>"$out/centrifugo.loadgen.log" || status=1
stop_pid "$out/centrifugo.pid"

for t in moim centrifugo; do
	echo "===== $t ====="
	cat "$out/$t.out"
done
echo
echo "Side by side (rooms of $room_size, $duration per stage; logs in $out):"
echo
python3 - "$out/moim.out" "$out/centrifugo.out" <<'EOF'
import json, sys

def ms(v):
    # as loadgen's tables: three significant digits or so
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v

rows = []
for path, name in zip(sys.argv[1:], ("Moim zero-setup", "Centrifugo memory")):
    for line in open(path):
        if line.startswith("{"):
            rows.append((name, json.loads(line)))
rows.sort(key=lambda r: r[1]["stage"])
print("| stage (users × msg/s) | server | sent / acked | deliveries expected / received | lost, dup, errors | delivery p50 / p99 / max | ack p99 | server CPU (ms per 1000 deliveries) | peak RSS | generator CPU | host busy (CPU of other work) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name, r in rows:
    lat, ack = r["latency_ms"], r["ack_latency_ms"]
    proc = (r.get("procs") or [{}])[0]
    errs = r["errors_total"]
    if r.get("errors"):
        errs = "%d (%s)" % (errs, ", ".join("%s=%d" % kv for kv in sorted(r["errors"].items())))
    stage = "%d × %g" % (r["users"], r["target_rate"])
    if r.get("failure"):
        stage += " (failed: %s)" % r["failure"]
    print("| %s | %s | %d / %d | %d / %d | %d, %d, %s | %s / **%s** / %s ms | %s ms | %.0f %% (%.1f) | %.0f MiB | %.1f s | %.0f %% (%.1f core-s) |" % (
        stage, name, r["sent"], r["acked"], r["expected_deliveries"], r["received_deliveries"],
        r["lost"], r["duplicates"], errs, ms(lat["p50"]), ms(lat["p99"]), ms(lat["max"]), ms(ack["p99"]),
        proc.get("cpu_percent", 0), proc.get("cpu_ms_per_1000_deliveries", 0), proc.get("peak_rss_kib", 0) / 1024,
        r["loadgen_cpu_seconds"], r["host"].get("busy_percent", 0), r["host"].get("other_cpu_seconds", 0)))
EOF
exit $status
