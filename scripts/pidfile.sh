# Shell functions shared by services.sh and redis-cluster.sh (sourced, not run).

# free_port prints a TCP port free on loopback right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# stop_pid stops the process whose PID file is $1 (TERM, then KILL after
# 10 s) and removes the file; a missing file or a gone process is fine.
stop_pid() {
	local f=$1
	[ -f "$f" ] || return 0
	local pid
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}
