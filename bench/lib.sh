# lib.sh - shell helpers shared by the benchmark scripts (sourced).
# Callers set PY (Debian's /usr/bin/python3) and START_TIMEOUT (seconds).

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_listen PORT PID: true once PORT accepts, false if PID died first.
wait_listen() {
	local port=$1 pid=$2 i
	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# CPU time (user + system) of a process, in clock ticks.
cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null
}

# jget FILE KEY.PATH: one value from loadgen's JSON.
jget() {
	$PY - "$1" "$2" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(v if not isinstance(v, dict) else
      " ".join(f"{a}={b}" for a, b in v.items()))
EOF
}
