#!/bin/bash
# run-redis.sh - greylisting throughput of greyspf with the Redis store next
# to the LMDB store, in one run, on the same machine and request mix.
#
# Each backend gets the same load from bench/loadgen (same seed, connections,
# attribute set and repeat ratio) for a bounded time:
#   lmdb         greyspf serve, LMDB in a temporary directory
#   redis        greyspf serve, a private redis-server over loopback TCP
#   redis-unix   the same over the server's unix socket
#   redis-hmac   TCP with key_hash = hmac (one HMAC-SHA256 per key)
# The redis-server is private: its own port, unix socket and directory,
# no persistence (--save '' --appendonly no), flushed before each backend.
# Prints decisions/s, latency percentiles, errors, the CPU share of greyspf
# and of redis-server, and each Redis backend's ratio to LMDB. Everything it
# starts is stopped by PID on exit; everything it writes is under one
# temporary directory, removed on exit (KEEP=1 keeps it).
#
# Settings (environment):
#   DURATION=10         seconds measured per backend (max 60)
#   WARMUP=1            seconds of load before each measurement, not counted
#   CONNECTIONS=100     concurrent connections (Postfix: 100 smtpd processes)
#   REPEAT_RATIO=0.5    fraction of requests reusing an earlier triplet
#   ATTRS=full          full (29 attributes, as Postfix 3.7) or minimal
#   BACKENDS="lmdb redis redis-unix redis-hmac"
#   BUILD=build-redis   build directory for greyspf and loadgen (built here)
#   GREYSPF=            the daemon binary (default $BUILD/greyspf)
#   JSON_OUT=FILE       also write all results as one JSON object to FILE
# Requires: cmake, a C compiler, redis-server, /usr/bin/python3.
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-100}
REPEAT_RATIO=${REPEAT_RATIO:-0.5}
ATTRS=${ATTRS:-full}
BACKENDS=${BACKENDS:-lmdb redis redis-unix redis-hmac}
BUILD=${BUILD:-build-redis}
JSON_OUT=${JSON_OUT:-}
PY=/usr/bin/python3
REDIS_SERVER=/usr/bin/redis-server
# How long a server may take to start listening, and to stop on SIGTERM.
START_TIMEOUT=15
STOP_TIMEOUT=10
SEED=42

case $BUILD in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
GREYSPF=${GREYSPF:-$BUILD/greyspf}

die() {
	echo "run-redis: $*" >&2
	exit 2
}

[ -x "$REDIS_SERVER" ] || die "redis-server missing (apt-get install redis-server)"
awk -v d="$DURATION" 'BEGIN {exit !(d > 0 && d <= 60)}' ||
	die "DURATION must be in (0, 60]"
if ! cmake -S "$REPO" -B "$BUILD" >/dev/null ||
	! cmake --build "$BUILD" --target loadgen greyspf -j2 >/dev/null; then
	die "cannot build loadgen and greyspf in $BUILD"
fi
LOADGEN=$BUILD/bench/loadgen
[ -x "$LOADGEN" ] || die "no $LOADGEN after the build"

TMP=$(mktemp -d /tmp/greyspf-bench-redis.XXXXXX) || die "mktemp failed"
chmod 755 "$TMP"
PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "run-redis: files kept in $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: end one process we started and forget it.
stop() {
	local pid=$1 keep=() p i
	kill "$pid" 2>/dev/null
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "   process $pid ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL" >&2
		kill -9 "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	for p in "${PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

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

cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null
}

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

# ---- the private redis-server ----
RPORT=$(free_port)
RSOCK=$TMP/redis.sock
"$REDIS_SERVER" --port "$RPORT" --bind 127.0.0.1 --unixsocket "$RSOCK" \
	--unixsocketperm 700 --dir "$TMP" --save '' --appendonly no \
	--daemonize no --logfile "$TMP/redis.log" &
RPID=$!
PIDS+=("$RPID")
wait_listen "$RPORT" "$RPID" || die "redis-server did not start: $(tail -3 "$TMP/redis.log")"

loadgen_args=(-c "$CONNECTIONS" -r "$REPEAT_RATIO" --attrs "$ATTRS"
	--seed "$SEED" --json)

run_backend() {
	local name=$1 store port pid c0 c1 r0 r1 hz
	port=$(free_port)
	case $name in
	lmdb) store="backend = lmdb
path = $TMP/$name-db" ;;
	redis) store="backend = redis
redis = redis://127.0.0.1:$RPORT/0" ;;
	redis-unix) store="backend = redis
redis = unix:$RSOCK" ;;
	redis-hmac) store="backend = redis
redis = redis://127.0.0.1:$RPORT/0
key_hash = hmac
key_secret = bench-secret" ;;
	*)
		echo "== $name: unknown backend, skipped" >&2
		return 0
		;;
	esac
	redis-cli -s "$RSOCK" FLUSHALL >/dev/null
	cat >"$TMP/$name.conf" <<EOF
# generated by bench/run-redis.sh: greylisting only, as run-greylist.sh
listen = inet:127.0.0.1:$port
user =
allow_root = yes
log = stderr
hostname = bench.example
checks = greylist

[store]
$store

[greylist]
delay = 5m
retry_window = 2d
max_age = 35d
auto_whitelist = 5
EOF
	"$GREYSPF" serve -c "$TMP/$name.conf" >"$TMP/$name.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	if ! wait_listen "$port" "$pid"; then
		echo "== $name: greyspf did not start:" >&2
		tail -5 "$TMP/$name.log" | sed 's/^/   /' >&2
		stop "$pid"
		return 1
	fi
	echo "== $name: ${WARMUP}s warm-up, ${DURATION}s measured, $CONNECTIONS connections" >&2
	if [ "$WARMUP" != 0 ]; then
		"$LOADGEN" "${loadgen_args[@]}" --seed 7 -d "$WARMUP" \
			"inet:127.0.0.1:$port" >"$TMP/$name.warmup.json"
	fi
	c0=$(cpu_ticks "$pid")
	r0=$(cpu_ticks "$RPID")
	"$LOADGEN" "${loadgen_args[@]}" -d "$DURATION" "inet:127.0.0.1:$port" \
		>"$TMP/$name.json"
	c1=$(cpu_ticks "$pid")
	r1=$(cpu_ticks "$RPID")
	hz=$(getconf CLK_TCK)
	awk -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$DURATION" \
		'BEGIN {printf "%.0f\n", (b - a) / hz / s * 100}' >"$TMP/$name.cpu"
	awk -v a="$r0" -v b="$r1" -v hz="$hz" -v s="$DURATION" \
		'BEGIN {printf "%.0f\n", (b - a) / hz / s * 100}' >"$TMP/$name.rcpu"
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "   $name: greyspf died during the run" >&2
	fi
	grep -c "store error" "$TMP/$name.log" >"$TMP/$name.storeerr"
	stop "$pid"
}

for b in $BACKENDS; do
	run_backend "$b"
done

# ---- report ----
echo
printf "%-11s %5s %12s %8s %8s %8s %6s %7s %9s %9s\n" backend secs \
	decisions/s p50_ms p99_ms max_ms errors srv_cpu redis_cpu store_err
for name in $BACKENDS; do
	f=$TMP/$name.json
	[ -s "$f" ] || continue
	rc=$(cat "$TMP/$name.rcpu")
	[ "$name" = lmdb ] && rc=-
	printf "%-11s %5.1f %12.0f %8.3f %8.3f %8.3f %6s %6s%% %8s%% %9s\n" \
		"$name" "$(jget "$f" seconds)" "$(jget "$f" requests_per_s)" \
		"$(jget "$f" latency_ms.p50)" "$(jget "$f" latency_ms.p99)" \
		"$(jget "$f" latency_ms.max)" "$(jget "$f" errors)" \
		"$(cat "$TMP/$name.cpu")" "$rc" "$(cat "$TMP/$name.storeerr")"
done
echo
for name in $BACKENDS; do
	[ -s "$TMP/$name.json" ] &&
		echo "actions $name: $(jget "$TMP/$name.json" actions)"
done
echo "mix: $CONNECTIONS connections, attrs $ATTRS, repeat ratio $REPEAT_RATIO, seed $SEED;" \
	"$(nproc) CPUs shared by loadgen, greyspf and redis-server ($("$REDIS_SERVER" --version | awk '{print $3}'));" \
	"load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in $BACKENDS; do
	[ "$name" = lmdb ] && continue
	a=$TMP/$name.json b=$TMP/lmdb.json
	[ -s "$a" ] && [ -s "$b" ] || continue
	awk -v ra="$(jget "$a" requests_per_s)" -v rb="$(jget "$b" requests_per_s)" \
		-v pa="$(jget "$a" latency_ms.p99)" -v pb="$(jget "$b" latency_ms.p99)" \
		-v n="$name/lmdb" 'BEGIN {
		printf "%-17s decisions/s x%.2f   p99 x%.2f\n", n,
			(rb > 0 ? ra / rb : 0), (pb > 0 ? pa / pb : 0) }'
done

if [ -n "$JSON_OUT" ]; then
	$PY - "$TMP" "$JSON_OUT" $BACKENDS <<'EOF'
import json, os, sys
tmp, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
res = {}
for name in names:
    p = os.path.join(tmp, name + ".json")
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        continue
    r = {"load": json.load(open(p))}
    for key, suffix in (("greyspf_cpu_percent", ".cpu"),
                        ("redis_cpu_percent", ".rcpu"),
                        ("store_errors_logged", ".storeerr")):
        try:
            r[key] = int(open(os.path.join(tmp, name + suffix)).read())
        except (OSError, ValueError):
            pass
    res[name] = r
json.dump(res, open(out, "w"), indent=1)
EOF
	echo "results written to $JSON_OUT"
fi
