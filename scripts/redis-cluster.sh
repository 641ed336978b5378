#!/usr/bin/env bash
# Starts a real Redis Cluster from Debian's redis-server on loopback, in a
# private directory, and prints the URL Moim takes for it.
#
#   eval "$(scripts/redis-cluster.sh start /tmp/moim-cluster)"     # 3 masters
#   REPLICAS=1 scripts/redis-cluster.sh start /tmp/moim-cluster    # 3 masters + 3 replicas
#   scripts/redis-cluster.sh stop /tmp/moim-cluster                # stops them by PID
#
# Prints: export MOIM_TEST_REDIS_CLUSTER_URL='redis+cluster://127.0.0.1:P1,…/'
# Ports are picked free at start; append-only persistence is on, so a
# restarted node keeps its data.
set -euo pipefail

cmd=${1:?usage: redis-cluster.sh start|stop DIR}
dir=${2:?usage: redis-cluster.sh start|stop DIR}
replicas=${REPLICAS:-0}

. "$(dirname "$0")/pidfile.sh"

case "$cmd" in
start)
	if ! command -v redis-server >/dev/null; then
		echo "installing redis-server" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq redis-server >&2
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	count=$((3 * (1 + replicas)))
	addrs=()
	for i in $(seq 1 "$count"); do
		port=$(free_port)
		mkdir -p "$dir/$port"
		# The cluster bus listens on port+10000; pick again if that is taken.
		while ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$port+10000))" 2>/dev/null; do
			rmdir "$dir/$port"; port=$(free_port); mkdir -p "$dir/$port"
		done
		redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/$port" --cluster-enabled yes \
			--cluster-config-file nodes.conf --cluster-node-timeout 2000 --appendonly yes --save '' \
			--daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" >&2
		addrs+=("127.0.0.1:$port")
	done
	for a in "${addrs[@]}"; do
		for _ in $(seq 1 50); do redis-cli -p "${a##*:}" ping >/dev/null 2>&1 && break; sleep 0.1; done
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1 ||
		{ cat "$dir/create.log" >&2; exit 1; }
	for _ in $(seq 1 100); do
		redis-cli -p "${addrs[0]##*:}" cluster info | grep -q 'cluster_state:ok' && break
		sleep 0.1
	done
	masters=$(IFS=,; echo "${addrs[*]:0:3}")
	echo "export MOIM_TEST_REDIS_CLUSTER_URL='redis+cluster://$masters/'"
	;;
stop)
	for f in "$dir"/*/redis.pid; do
		stop_pid "$f"
	done
	;;
*)
	echo "usage: redis-cluster.sh start|stop DIR" >&2
	exit 2
	;;
esac
