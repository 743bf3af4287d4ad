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
#   ROUNDS=1            runs of every backend, alternating (lmdb, redis, ...,
#                       lmdb, redis, ...); the report gives each backend's
#                       median run and the range, so a busy machine shows
#                       as spread rather than as a wrong ratio
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
ROUNDS=${ROUNDS:-1}
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
	local name=$1 out=$2 store port pid c0 c1 r0 r1 hz
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
		>"$TMP/$out.json"
	c1=$(cpu_ticks "$pid")
	r1=$(cpu_ticks "$RPID")
	hz=$(getconf CLK_TCK)
	awk -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$DURATION" \
		'BEGIN {printf "%.0f\n", (b - a) / hz / s * 100}' >"$TMP/$out.cpu"
	awk -v a="$r0" -v b="$r1" -v hz="$hz" -v s="$DURATION" \
		'BEGIN {printf "%.0f\n", (b - a) / hz / s * 100}' >"$TMP/$out.rcpu"
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "   $name: greyspf died during the run" >&2
	fi
	grep -c "store error" "$TMP/$name.log" >"$TMP/$out.storeerr"
	stop "$pid"
}

for ((round = 1; round <= ROUNDS; round++)); do
	for b in $BACKENDS; do
		run_backend "$b" "$b.$round"
	done
done

# ---- report ----
echo
$PY - "$TMP" "$ROUNDS" "$JSON_OUT" $BACKENDS <<'EOF'
import json, os, sys
tmp, rounds, out, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]


def read(path):
    try:
        return int(open(path).read().strip())
    except (OSError, ValueError):
        return None


runs = {}
for name in names:
    for r in range(1, rounds + 1):
        p = os.path.join(tmp, f"{name}.{r}")
        if not os.path.exists(p + ".json") or os.path.getsize(p + ".json") == 0:
            continue
        runs.setdefault(name, []).append({
            "load": json.load(open(p + ".json")),
            "greyspf_cpu_percent": read(p + ".cpu"),
            "redis_cpu_percent": read(p + ".rcpu"),
            "store_errors_logged": read(p + ".storeerr"),
        })


def median_run(rs):
    rs = sorted(rs, key=lambda x: x["load"]["requests_per_s"])
    return rs[(len(rs) - 1) // 2]


print("%-11s %4s %12s %15s %8s %8s %8s %6s %7s %9s %9s" % (
    "backend", "runs", "decisions/s", "range", "p50_ms", "p99_ms", "max_ms",
    "errors", "srv_cpu", "redis_cpu", "store_err"))
med = {}
for name in names:
    if name not in runs:
        continue
    rs = runs[name]
    m = med[name] = median_run(rs)
    rates = [x["load"]["requests_per_s"] for x in rs]
    lat = m["load"]["latency_ms"]
    print("%-11s %4d %12.0f %7.0f-%-7.0f %8.3f %8.3f %8.3f %6d %6s%% %8s%% %9s"
          % (name, len(rs), m["load"]["requests_per_s"], min(rates),
             max(rates), lat["p50"], lat["p99"], lat["max"],
             m["load"]["errors"], m["greyspf_cpu_percent"],
             "-" if name == "lmdb" else m["redis_cpu_percent"],
             m["store_errors_logged"]))
print()
for name in med:
    acts = " ".join(f"{a}={n}" for a, n in med[name]["load"]["actions"].items())
    print(f"actions {name} (median run): {acts}")
if "lmdb" in med:
    b = med["lmdb"]["load"]
    for name in med:
        if name == "lmdb":
            continue
        a = med[name]["load"]
        print("%-17s decisions/s x%.2f   p99 x%.2f" % (
            name + "/lmdb",
            a["requests_per_s"] / b["requests_per_s"]
            if b["requests_per_s"] else 0,
            a["latency_ms"]["p99"] / b["latency_ms"]["p99"]
            if b["latency_ms"]["p99"] else 0))
if out:
    json.dump(runs, open(out, "w"), indent=1)
    print(f"results written to {out}")
EOF
echo "mix: $CONNECTIONS connections, attrs $ATTRS, repeat ratio $REPEAT_RATIO," \
	"seed $SEED, ${DURATION}s per run; $(nproc) CPUs shared by loadgen," \
	"greyspf and redis-server ($("$REDIS_SERVER" --version | awk '{print $3}'));" \
	"load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
