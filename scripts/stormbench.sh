#!/usr/bin/env bash
# stormbench.sh: a connection storm on each engine: N WebSockets dialled
# at once into fresh rooms, each timed from its "ready" until it receives
# its room's messages (scripts/loadgen -storm).
#
#   scripts/stormbench.sh [CONNECTIONS] [-- extra loadgen flags]
#   scripts/stormbench.sh 5000
#   ENGINES=redis scripts/stormbench.sh 500 -- -storm-probe 50ms
#
# It builds the server and scripts/loadgen, then for each engine in
# ENGINES (default "memory redis") starts a fresh node with the load-test
# settings (throwaway data directory; the Redis path on its own
# redis-server, persistence off, the message store embedded), runs one
# storm stage against it with -pid on the node (and redis-server), and
# stops it. Output: loadgen's table and JSON line per engine, and the load
# average at each start. Every process it starts is stopped by its PID.
# Environment: ENGINES, ROOM_SIZE (10), OUT (log directory, default new),
# MOIM_BIN (a server binary to measure instead of this tree's, e.g. an
# older commit's, for a before/after with the same generator).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=pidfile.sh
. "$here/pidfile.sh"

conns=${1:-5000}
shift || true
[ "${1:-}" = "--" ] && shift
extra=("$@")
engines=${ENGINES:-memory redis}
room_size=${ROOM_SIZE:-10}
out=${OUT:-$(mktemp -d /tmp/stormbench.XXXXXX)}
mkdir -p "$out"

cleanup() {
	stop_pid "$out/moim.pid"
	stop_pid "$out/redis.pid"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every connection is a descriptor on both ends.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

wait_http() {
	for _ in $(seq 1 300); do
		curl -sf -o /dev/null "$1" && return 0
		kill -0 "$(cat "$2")" 2>/dev/null || { echo "stormbench: process of $2 exited; see $out" >&2; return 1; }
		sleep 0.2
	done
	echo "stormbench: $1 not ready after 60 s" >&2
	return 1
}

echo "stormbench: building into $out" >&2
(cd "$root" && go build -o "$out/moim" ./server && go build -o "$out/loadgen" ./scripts/loadgen)
[ -n "${MOIM_BIN:-}" ] && cp "$MOIM_BIN" "$out/moim"

status=0
for engine in $engines; do
	env=()
	pids=""
	if [ "$engine" = redis ]; then
		rport=$(free_port)
		redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --dir "$out" \
			>"$out/redis.log" 2>&1 &
		echo $! >"$out/redis.pid"
		until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done
		env=(MOIM_REDIS_URL="redis://127.0.0.1:$rport/0" MOIM_JWT_SECRET="$(head -c 32 /dev/urandom | base64)")
		pids=",$(cat "$out/redis.pid")"
	fi
	port=$(free_port)
	rm -rf "$out/data-$engine"
	env "${env[@]}" MOIM_BCRYPT_COST=4 MOIM_SEND_RATE=1000 MOIM_SEND_BURST=1000 MOIM_SEND_LIMIT=off \
		MOIM_SIGNUP_LIMIT=off MOIM_UPGRADE_LIMIT=off MOIM_INVITE_RULE=anyone \
		MOIM_DATA_DIR="$out/data-$engine" MOIM_ADDR="127.0.0.1:$port" "$out/moim" >"$out/moim-$engine.log" 2>&1 &
	echo $! >"$out/moim.pid"
	wait_http "http://127.0.0.1:$port/readyz" "$out/moim.pid"
	echo "stormbench: $engine node on :$port (pid $(cat "$out/moim.pid")), load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	echo "===== $engine ====="
	"$out/loadgen" -storm -url "http://127.0.0.1:$port" -users "$conns" -room-size "$room_size" \
		-pid "$(cat "$out/moim.pid")$pids" "${extra[@]}" 2>"$out/loadgen-$engine.log" || status=1
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	stop_pid "$out/moim.pid"
	stop_pid "$out/redis.pid"
done
exit $status
