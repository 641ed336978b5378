#!/usr/bin/env bash
# The server tests' other passes (make check; server/passes_test.go): on
# the single-node engine and, when MOIM_TEST_REDIS_CLUSTER_URL names one,
# on the Redis Cluster, side by side: each is one test process that mostly
# waits on sockets and timers. The race-built test binary is linked once
# for both (each `go test` would link its own, ~15 s of CPU apiece); each
# pass writes to a file of its own, printed when both ended, so their
# reports do not interleave. The exit status is 1 when a pass failed.
set -euo pipefail
cd "$(dirname "$0")/.."
go=${GO:-go}
dir=$(mktemp -d /tmp/moim-passes.XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$go" test -race -vet=off -c -o "$dir/server.test" ./server

# pass NAME VAR=VALUE...: the server tests with those variables set, run
# from the package's directory as go test runs them.
pass() {
	local name=$1 start status=0
	shift
	start=$(date +%s)
	(cd server && env "$@" "$dir/server.test" -test.paniconexit0 -test.count=1 -test.timeout=10m) \
		>"$dir/$name.out" 2>&1 || status=$?
	echo "$status $(($(date +%s) - start))" >"$dir/$name.status"
}

passes=(memory)
pass memory MOIM_TEST_ENGINE=memory &
if [ -n "${MOIM_TEST_REDIS_CLUSTER_URL:-}" ]; then
	echo "again on the single-node engine, and on the Redis Cluster at $MOIM_TEST_REDIS_CLUSTER_URL"
	passes+=(cluster)
	pass cluster MOIM_TEST_REDIS_URL="$MOIM_TEST_REDIS_CLUSTER_URL" &
else
	echo "again on the single-node engine (no MOIM_TEST_REDIS_CLUSTER_URL: no cluster pass)"
fi
wait

failed=0
for p in "${passes[@]}"; do
	read -r status secs <"$dir/$p.status"
	if [ "$status" = 0 ]; then
		# As go test reports a passing package: its output only with -v.
		echo "ok   moim/server ($p pass) ${secs}s"
	else
		cat "$dir/$p.out"
		echo "FAIL moim/server ($p pass) ${secs}s"
		failed=1
	fi
done
exit $failed
