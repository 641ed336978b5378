#!/usr/bin/env bash
# Starts the real services the tests use — redis-server and MariaDB — on
# loopback, in a private directory, and prints the env the tests read.
#
#   eval "$(scripts/services.sh start /tmp/moim-services)"   # exports MOIM_TEST_*
#   scripts/services.sh stop /tmp/moim-services              # stops them by PID
#
# Installs the Debian packages when missing (needs root). Ports are picked
# free at start; nothing system-wide is started or stopped.
set -euo pipefail

cmd=${1:?usage: services.sh start|stop DIR}
dir=${2:?usage: services.sh start|stop DIR}

. "$(dirname "$0")/pidfile.sh"

case "$cmd" in
start)
	need=()
	command -v redis-server >/dev/null || need+=(redis-server)
	command -v mariadbd >/dev/null || need+=(mariadb-server)
	if [ ${#need[@]} -gt 0 ]; then
		echo "installing ${need[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq "${need[@]}" >&2
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)

	rport=$(free_port)
	redis-server --bind 127.0.0.1 --port "$rport" --dir "$dir" --save '' --appendonly no \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2
	for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
	redis-cli -p "$rport" ping >/dev/null

	mkdir -p "$dir/mysql"
	mariadb-install-db --user="$(id -un)" --datadir="$dir/mysql" --auth-root-authentication-method=normal \
		--skip-test-db >"$dir/mariadb-install.log" 2>&1
	# Up to three tries: a port picked free can be taken before mariadbd
	# binds it (the Redis Cluster starts beside), and on a machine busy
	# building, mariadbd can take well over 20 s to answer; it is waited
	# for as long as it runs, up to 2 minutes.
	up=""
	for _ in 1 2 3; do
		mport=$(free_port)
		mariadbd --no-defaults --user="$(id -un)" --datadir="$dir/mysql" --socket="$dir/mysql.sock" \
			--port="$mport" --bind-address=127.0.0.1 --pid-file="$dir/mariadb.pid" \
			--log-error="$dir/mariadb.log" --skip-log-bin --innodb-buffer-pool-size=256M \
			--innodb-flush-log-at-trx-commit=2 --max-connections=500 </dev/null >>"$dir/mariadb.log" 2>&1 &
		mpid=$!
		for _ in $(seq 1 600); do
			if mariadb --socket="$dir/mysql.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
				up=1
				break
			fi
			kill -0 "$mpid" 2>/dev/null || break
			sleep 0.2
		done
		[ -z "$up" ] || break
		kill "$mpid" 2>/dev/null || true
		wait "$mpid" 2>/dev/null || true
	done
	if [ -z "$up" ]; then
		echo "services: MariaDB did not start; the end of its log:" >&2
		tail -n 30 "$dir/mariadb.log" >&2
		exit 1
	fi
	mariadb --socket="$dir/mysql.sock" -uroot -e \
		"CREATE USER IF NOT EXISTS 'moim'@'127.0.0.1' IDENTIFIED BY 'moim'; GRANT ALL ON *.* TO 'moim'@'127.0.0.1'; FLUSH PRIVILEGES;"

	echo "export MOIM_TEST_REDIS_URL='redis://127.0.0.1:$rport/0'"
	echo "export MOIM_TEST_MYSQL_DSN='moim:moim@tcp(127.0.0.1:$mport)/'"
	;;
stop)
	stop_pid "$dir/redis.pid"
	stop_pid "$dir/mariadb.pid"
	;;
*)
	echo "usage: services.sh start|stop DIR" >&2
	exit 2
	;;
esac
