#!/usr/bin/env bash
# Runs a command (`make test` runs `make check`) with the real services the
# tests need, starting the ones not already named:
#
#   MOIM_TEST_REDIS_URL, MOIM_TEST_MYSQL_DSN  redis-server and MariaDB (scripts/services.sh)
#   MOIM_TEST_REDIS_CLUSTER_URL               a 3-master Redis Cluster (scripts/redis-cluster.sh)
#   MOIM_TEST_MONGO_URI                       FerretDB on SQLite (scripts/ferretdb)
#
#   scripts/test.sh make check
#   scripts/test.sh go test -race -run TestSyncAfterReconnect ./server
#
# Everything it starts listens on free loopback ports in a private
# directory and is stopped by PID when the command ends, fails or is
# interrupted. Missing Debian packages are installed (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: scripts/test.sh COMMAND [ARG...]" >&2; exit 2; }
. scripts/pidfile.sh

work=$(mktemp -d /tmp/moim-test.XXXXXX)
started=()
cleanup() {
	local s
	for s in "${started[@]}"; do
		case $s in
		services) scripts/services.sh stop "$work/services" || true ;;
		cluster)
			# One still starting (beside the services) first finishes, so
			# every node it started has its pid file.
			[ -z "${cluster:-}" ] || wait "$cluster" 2>/dev/null || true
			scripts/redis-cluster.sh stop "$work/cluster" || true
			;;
		ferretdb) stop_pid "$work/ferretdb.pid" ;;
		esac
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Many nodes, clients and load generators run at once.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

# FerretDB builds while the others start. The Redis Cluster starts beside
# the services when their packages are installed (both mostly wait on
# processes coming up, about 25 s each), after them otherwise: each may
# install packages with apt, which takes one at a time.
if [ -z "${MOIM_TEST_MONGO_URI:-}" ]; then
	started+=(ferretdb)
	go build -o "$work/ferretdb" ./scripts/ferretdb &
	build=$!
fi
if [ -z "${MOIM_TEST_REDIS_CLUSTER_URL:-}" ]; then
	started+=(cluster)
	if command -v redis-server >/dev/null && command -v mariadbd >/dev/null; then
		scripts/redis-cluster.sh start "$work/cluster" >"$work/cluster.env" &
		cluster=$!
	fi
fi
if [ -z "${MOIM_TEST_REDIS_URL:-}" ] || [ -z "${MOIM_TEST_MYSQL_DSN:-}" ]; then
	started+=(services)
	svc=$(scripts/services.sh start "$work/services")
	# Keep a service the developer named; take the started one otherwise.
	[ -n "${MOIM_TEST_REDIS_URL:-}" ] || eval "$(grep MOIM_TEST_REDIS_URL <<<"$svc")"
	[ -n "${MOIM_TEST_MYSQL_DSN:-}" ] || eval "$(grep MOIM_TEST_MYSQL_DSN <<<"$svc")"
fi
if [ -z "${MOIM_TEST_REDIS_CLUSTER_URL:-}" ]; then
	if [ -n "${cluster:-}" ]; then
		wait "$cluster" || { echo "the Redis Cluster did not start" >&2; exit 1; }
	else
		scripts/redis-cluster.sh start "$work/cluster" >"$work/cluster.env"
	fi
	eval "$(cat "$work/cluster.env")"
fi
if [ -n "${build:-}" ]; then
	wait "$build"
	"$work/ferretdb" -addr "127.0.0.1:$(free_port)" -dir "$work/ferretdb-data" \
		>"$work/ferretdb.out" 2>"$work/ferretdb.log" </dev/null &
	echo $! >"$work/ferretdb.pid"
	for _ in $(seq 1 300); do
		grep -qs '^ready ' "$work/ferretdb.out" && break
		kill -0 "$(cat "$work/ferretdb.pid")" 2>/dev/null || break
		sleep 0.1
	done
	grep -q '^ready ' "$work/ferretdb.out" || { echo "FerretDB did not start:" >&2; cat "$work/ferretdb.log" >&2; exit 1; }
	MOIM_TEST_MONGO_URI=$(sed -n 's/^ready //p' "$work/ferretdb.out")
fi
export MOIM_TEST_REDIS_URL MOIM_TEST_MYSQL_DSN MOIM_TEST_REDIS_CLUSTER_URL MOIM_TEST_MONGO_URI
echo "services: redis=$MOIM_TEST_REDIS_URL mysql=$MOIM_TEST_MYSQL_DSN cluster=$MOIM_TEST_REDIS_CLUSTER_URL mongo=$MOIM_TEST_MONGO_URI" >&2

# Not exec: the trap stops the services when the command ends.
"$@"
