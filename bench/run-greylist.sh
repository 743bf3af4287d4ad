#!/bin/bash
# run-greylist.sh - greylisting throughput of greyspf next to postgrey and
# next to a server that does nothing (the harness's ceiling on this machine).
#
# In one run, each server gets the same request mix from bench/loadgen
# (same seed, connections, attribute set and repeat ratio), for a bounded
# time each:
#   dunno     bench/dunno_server: answers action=DUNNO without parsing
#   postgrey  Debian's postgrey, a private instance on a loopback port with
#             its own --dbdir in a temporary directory (not the system service)
#   greyspf   build/greyspf serve with a generated config: greylist only,
#             LMDB in a temporary directory; skipped with a message when the
#             binary has no working `serve`
# then holds $HOLD idle connections open on each and reads VmRSS from
# /proc/PID/status. Prints one table and the ratios greyspf/postgrey and
# greyspf/dunno. Everything it starts is stopped by PID on exit; everything
# it writes is under one temporary directory, removed on exit (KEEP=1 keeps
# it, e.g. to read the daemons' logs).
#
# Settings (environment):
#   DURATION=10          seconds of measurement for dunno and greyspf (max 60)
#   POSTGREY_DURATION=5  postgrey manages ~2,000-3,000/s; a short run suffices
#   WARMUP=1             seconds of load before each measurement, not counted
#   ROUNDS=1             measurements per server, interleaved; the table shows
#                        the round with the median rate (3 on a busy machine)
#   CONNECTIONS=100      concurrent connections (Postfix: 100 smtpd processes)
#   REPEAT_RATIO=0.5     fraction of requests reusing an earlier triplet
#   ATTRS=full           full (29 attributes, as Postfix 3.7) or minimal
#   HOLD=1000            idle connections held for the memory figure (0: skip)
#   GREYSPF=build/greyspf   the daemon binary (relative to the repository)
#   GREYSPF_EXTRA=       extra lines for the generated greyspf config
#   STORE=lmdb           greyspf's store: lmdb, or redis (a private
#                        redis-server on a loopback port, no persistence)
#   LMDB_SYNC=           yes/no: [store] sync for LMDB; empty keeps the
#                        daemon's default. postgrey syncs every commit
#                        (BerkeleyDB DB_AUTO_COMMIT without DB_TXN_NOSYNC)
#   BUILD=build-bench    where loadgen and dunno_server are built
#   ONLY="dunno postgrey greyspf"   which servers to run
#   JSON_OUT=FILE        also write all results as one JSON object to FILE
#   WORKDIR_BASE=/tmp    where the temporary directory (and so both stores)
#                        goes; /dev/shm takes the disk's fsync out of the
#                        figures (postgrey and greyspf both sync each commit)
# Requires: cmake, a C compiler, /usr/bin/python3, postgrey (apt-get install
# postgrey; the system service need not run).
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
POSTGREY_DURATION=${POSTGREY_DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-1}
CONNECTIONS=${CONNECTIONS:-100}
REPEAT_RATIO=${REPEAT_RATIO:-0.5}
ATTRS=${ATTRS:-full}
HOLD=${HOLD:-1000}
GREYSPF=${GREYSPF:-build/greyspf}
GREYSPF_EXTRA=${GREYSPF_EXTRA:-}
STORE=${STORE:-lmdb}
LMDB_SYNC=${LMDB_SYNC:-}
BUILD=${BUILD:-build-bench}
ONLY=${ONLY:-dunno postgrey greyspf}
JSON_OUT=${JSON_OUT:-}
WORKDIR_BASE=${WORKDIR_BASE:-/tmp}
PY=/usr/bin/python3
# How long a server may take to start listening, and how long the held
# connections stay open (they are released as soon as RSS is read).
START_TIMEOUT=15
HOLD_SECONDS=30
SEED=42 # round R uses seed SEED+R

case $GREYSPF in /*) ;; *) GREYSPF=$REPO/$GREYSPF ;; esac
case $BUILD in /*) ;; *) BUILD=$REPO/$BUILD ;; esac

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

die() {
	echo "run-greylist: $*" >&2
	exit 2
}

# ---- build the harness ----
if ! cmake -S "$REPO" -B "$BUILD" >/dev/null ||
	! cmake --build "$BUILD" --target loadgen dunno_server -j2 >/dev/null; then
	die "cannot build loadgen and dunno_server in $BUILD"
fi
LOADGEN=$BUILD/bench/loadgen
DUNNO=$BUILD/bench/dunno_server

TMP=$(mktemp -d "$WORKDIR_BASE/greyspf-bench.XXXXXX") || die "mktemp failed"
chmod 755 "$TMP"
PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		stop "$pid"
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "run-greylist: files kept in $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: end one process we started and forget it, so the exit trap
# never signals a PID the system may have reused.
# postgrey (Net::Server::Multiplex) may ignore the first SIGTERM, so ask
# twice, then SIGKILL.
stop() {
	local pid=$1 keep=() p sig i
	for sig in TERM TERM KILL; do
		kill -s "$sig" "$pid" 2>/dev/null || break
		for ((i = 0; i < 30; i++)); do
			kill -0 "$pid" 2>/dev/null || break 2
			sleep 0.1
		done
	done
	wait "$pid" 2>/dev/null
	for p in "${PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}



rss_kb() {
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null
}

# Anonymous part of the RSS: VmRSS also counts mapped file pages, such as
# LMDB's map of its database file.
rss_anon_kb() {
	awk '/^RssAnon:/ {print $2}' "/proc/$1/status" 2>/dev/null
}



loadgen_args=(-c "$CONNECTIONS" -r "$REPEAT_RATIO" --attrs "$ATTRS" --json)
SERVERS=()
declare -A SPID SPORT SDUR SAUX

# ---- start the servers (all stay up, idle, while the others are measured) ----
if [[ " $ONLY " == *" dunno "* ]]; then
	port=$(free_port)
	"$DUNNO" --duration 3600 "inet:127.0.0.1:$port" 2>"$TMP/dunno.log" &
	pid=$!
	PIDS+=("$pid")
	if wait_listen "$port" "$pid"; then
		SERVERS+=(dunno)
		SPID[dunno]=$pid SPORT[dunno]=$port SDUR[dunno]=$DURATION
	else
		echo "== dunno: did not start: $(tail -3 "$TMP/dunno.log")" >&2
	fi
fi

if [[ " $ONLY " == *" postgrey "* ]]; then
	if ! command -v postgrey >/dev/null; then
		echo "== postgrey: not installed (apt-get install postgrey); skipped" >&2
	else
		mkdir -p "$TMP/postgrey"
		if [ "$(id -u)" = 0 ] && id postgrey >/dev/null 2>&1; then
			pg_user=postgrey
			pg_group=$(id -gn postgrey)
		else
			pg_user=$(id -un)
			pg_group=$(id -gn)
		fi
		chown "$pg_user:$pg_group" "$TMP/postgrey"
		port=$(free_port)
		# Foreground (no --daemonize), so $! is the server; it logs each
		# decision to stderr, as greyspf does with log = stderr.
		postgrey --inet="127.0.0.1:$port" --dbdir="$TMP/postgrey" \
			--pidfile="$TMP/postgrey/postgrey.pid" \
			--user="$pg_user" --group="$pg_group" \
			>"$TMP/postgrey.log" 2>&1 &
		pid=$!
		PIDS+=("$pid")
		if wait_listen "$port" "$pid"; then
			SERVERS+=(postgrey)
			SPID[postgrey]=$pid SPORT[postgrey]=$port
			SDUR[postgrey]=$POSTGREY_DURATION
		else
			echo "== postgrey: did not start: $(tail -3 "$TMP/postgrey.log")" >&2
		fi
	fi
fi

if [[ " $ONLY " == *" greyspf "* ]]; then
	redis_pid=
	case $STORE in
	lmdb)
		store_conf="backend = lmdb
path = $TMP/greyspf-db"
		[ -z "$LMDB_SYNC" ] || store_conf+=$'\n'"sync = $LMDB_SYNC"
		;;
	redis)
		command -v redis-server >/dev/null ||
			die "STORE=redis needs redis-server (apt-get install redis-server)"
		rport=$(free_port)
		mkdir -p "$TMP/redis"
		redis-server --bind 127.0.0.1 --port "$rport" --save '' \
			--appendonly no --dir "$TMP/redis" --daemonize no \
			>"$TMP/redis.log" 2>&1 &
		redis_pid=$!
		PIDS+=("$redis_pid")
		wait_listen "$rport" "$redis_pid" ||
			die "redis-server did not start: $(tail -3 "$TMP/redis.log")"
		store_conf="backend = redis
redis = redis://127.0.0.1:$rport/0"
		;;
	*) die "STORE must be lmdb or redis" ;;
	esac
	port=$(free_port)
	cat >"$TMP/greyspf.conf" <<EOF
# generated by bench/run-greylist.sh: greylisting only, as postgrey does
listen = inet:127.0.0.1:$port
user =
allow_root = yes
log = stderr
hostname = bench.example
checks = greylist

[store]
$store_conf

[greylist]
delay = 5m
retry_window = 2d
max_age = 35d
auto_whitelist = 5
$GREYSPF_EXTRA
EOF
	if [ ! -x "$GREYSPF" ]; then
		echo "== greyspf: $GREYSPF not built; skipped" >&2
	else
		"$GREYSPF" serve -c "$TMP/greyspf.conf" >"$TMP/greyspf.log" 2>&1 &
		pid=$!
		PIDS+=("$pid")
		if wait_listen "$port" "$pid"; then
			SERVERS+=(greyspf)
			SPID[greyspf]=$pid SPORT[greyspf]=$port
			SDUR[greyspf]=$DURATION SAUX[greyspf]=$redis_pid
		else
			echo "== greyspf: skipped: '$GREYSPF serve' does not listen" \
				"(no serve command yet, or it failed). Its output:" >&2
			tail -5 "$TMP/greyspf.log" | sed 's/^/   /' >&2
		fi
	fi
fi

# cpu_percent T0 T1 SECONDS: CPU ticks between two readings, as % of a CPU
# over SECONDS, then as CPU seconds.
cpu_percent() {
	if [ -z "$1" ] || [ -z "$2" ]; then
		echo "- -"
		return
	fi
	awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" -v s="$3" \
		'BEGIN {printf "%.0f %.2f\n", (b - a) / hz / s * 100, (b - a) / hz}'
}

# load NAME ROUND: one warm-up and one measured run; $TMP/NAME.ROUND.*
load() {
	local name=$1 round=$2 pid=${SPID[$1]} secs=${SDUR[$1]}
	local aux=${SAUX[$1]:-} target="inet:127.0.0.1:${SPORT[$1]}"
	local c0 c1 a0= a1= seed=$((SEED + round))

	kill -0 "$pid" 2>/dev/null || return 1
	echo "== $name, round $round: ${WARMUP}s warm-up, ${secs}s measured" >&2
	if [ "$WARMUP" != 0 ]; then
		"$LOADGEN" "${loadgen_args[@]}" --seed $((seed + 1000)) \
			-d "$WARMUP" "$target" >"$TMP/$name.$round.warmup.json"
	fi
	c0=$(cpu_ticks "$pid")
	[ -z "$aux" ] || a0=$(cpu_ticks "$aux")
	# Each round sends fresh triplets; within a round every server gets
	# the same sequence.
	"$LOADGEN" "${loadgen_args[@]}" --seed "$seed" -d "$secs" "$target" \
		>"$TMP/$name.$round.json"
	c1=$(cpu_ticks "$pid")
	cpu_percent "$c0" "$c1" "$secs" >"$TMP/$name.$round.cpu"
	if [ -n "$aux" ]; then
		a1=$(cpu_ticks "$aux")
		cpu_percent "$a0" "$a1" "$secs" >"$TMP/$name.$round.auxcpu"
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "   $name died during the run" >&2
		return 1
	fi
}

# hold NAME: VmRSS before and while $HOLD idle connections are open.
hold() {
	local name=$1 pid=${SPID[$1]} target="inet:127.0.0.1:${SPORT[$1]}"
	local rss0 rss1 anon0 lg i

	kill -0 "$pid" 2>/dev/null || return 1
	echo "== $name: holding $HOLD idle connections" >&2
	rss0=$(rss_kb "$pid")
	anon0=$(rss_anon_kb "$pid")
	"$LOADGEN" --hold-connections "$HOLD" -d "$HOLD_SECONDS" --json \
		--seed 9 "$target" >"$TMP/$name.hold" &
	lg=$!
	PIDS+=("$lg")
	for ((i = 0; i < HOLD_SECONDS * 10; i++)); do
		grep -q '^ready:' "$TMP/$name.hold" 2>/dev/null && break
		kill -0 "$lg" 2>/dev/null || break
		sleep 0.1
	done
	if grep -q '^ready:' "$TMP/$name.hold"; then
		sleep 1 # let the daemon finish whatever the burst started
		rss1=$(rss_kb "$pid")
		echo "$rss0 $rss1" >"$TMP/$name.rss"
		echo "$anon0 $(rss_anon_kb "$pid")" >"$TMP/$name.anon"
	else
		echo "   $name: $HOLD connections not all established" >&2
		echo "$rss0 -" >"$TMP/$name.rss"
	fi
	stop "$lg"
}

# Rounds interleave the servers, so a burst of other load on the machine
# hits all of them rather than one.
for ((round = 1; round <= ROUNDS; round++)); do
	for name in "${SERVERS[@]}"; do
		load "$name" "$round"
	done
done
if [ "$HOLD" -gt 0 ]; then
	for name in "${SERVERS[@]}"; do
		hold "$name"
	done
fi
for name in "${SERVERS[@]}"; do
	stop "${SPID[$name]}"
	[ -z "${SAUX[$name]:-}" ] || stop "${SAUX[$name]}"
done

# The round with the median rate stands for the server: $TMP/NAME.json.
for name in "${SERVERS[@]}"; do
	best=$($PY - "$TMP" "$name" "$ROUNDS" <<'PYEOF'
import json, os, sys
tmp, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = []
for r in range(1, rounds + 1):
    try:
        with open(os.path.join(tmp, f"{name}.{r}.json")) as f:
            runs.append((json.load(f)["requests_per_s"], r))
    except (OSError, ValueError, KeyError):
        pass
if runs:
    median = sorted(runs)[(len(runs) - 1) // 2][1]
    print(median, " ".join(f"{v:.0f}" for v, _ in sorted(runs, key=lambda x: x[1])))
PYEOF
	)
	[ -n "$best" ] || continue
	read -r r all <<<"$best"
	cp "$TMP/$name.$r.json" "$TMP/$name.json"
	cp "$TMP/$name.$r.cpu" "$TMP/$name.cpu" 2>/dev/null
	cp "$TMP/$name.$r.auxcpu" "$TMP/$name.auxcpu" 2>/dev/null
	echo "$all" >"$TMP/$name.rounds"
done

# ---- report ----
echo
printf "%-9s %5s %11s %8s %8s %8s %6s %7s %7s %6s %8s %9s %8s\n" server secs \
	requests/s p50_ms p99_ms max_ms errors srv_cpu us/req lg_cpu rss_kB \
	"rss+${HOLD}c" kB/conn
for name in dunno postgrey greyspf; do
	f=$TMP/$name.json
	[ -s "$f" ] || continue
	cpu=- cpusec=- usreq=-
	[ -s "$TMP/$name.cpu" ] && read -r cpu cpusec <"$TMP/$name.cpu"
	if [[ $cpusec =~ ^[0-9.]+$ ]]; then
		usreq=$(awk -v c="$cpusec" -v n="$(jget "$f" requests)" \
			'BEGIN {if (n > 0) printf "%.1f", c / n * 1e6; else print "-"}')
	fi
	rss0=- rss1=-
	[ -s "$TMP/$name.rss" ] && read -r rss0 rss1 <"$TMP/$name.rss"
	per=-
	if [[ $rss0 =~ ^[0-9]+$ && ${rss1:-} =~ ^[0-9]+$ ]]; then
		per=$(awk -v a="$rss0" -v b="$rss1" -v n="$HOLD" \
			'BEGIN {printf "%.1f", (b - a) / n}')
	fi
	printf "%-9s %5.1f %11.0f %8.3f %8.3f %8.3f %6s %6s%% %7s %5.0f%% %8s %9s %8s\n" \
		"$name" "$(jget "$f" seconds)" "$(jget "$f" requests_per_s)" \
		"$(jget "$f" latency_ms.p50)" "$(jget "$f" latency_ms.p99)" \
		"$(jget "$f" latency_ms.max)" "$(jget "$f" errors)" "$cpu" "$usreq" \
		"$(jget "$f" loadgen_cpu_percent)" \
		"${rss0:--}" "${rss1:--}" "$per"
done
echo
for name in dunno postgrey greyspf; do
	[ -s "$TMP/$name.json" ] || continue
	echo "actions $name: $(jget "$TMP/$name.json" actions)"
	[ "$ROUNDS" -le 1 ] ||
		echo "   requests/s per round: $(cat "$TMP/$name.rounds")"
done
for name in dunno postgrey greyspf; do
	[ -s "$TMP/$name.anon" ] || continue
	read -r a0 a1 <"$TMP/$name.anon"
	echo "RssAnon $name: $a0 kB idle, $a1 kB with $HOLD connections" \
		"(VmRSS minus mapped files such as the LMDB map)"
done
if [ -s "$TMP/greyspf.auxcpu" ]; then
	read -r apct asec <"$TMP/greyspf.auxcpu"
	echo "redis-server CPU during the greyspf run: $apct% ($(awk -v c="$asec" \
		-v n="$(jget "$TMP/greyspf.json" requests)" \
		'BEGIN {if (n > 0) printf "%.1f", c / n * 1e6}') us/req)"
fi
echo "mix: $CONNECTIONS connections, attrs $ATTRS, repeat ratio $REPEAT_RATIO," \
	"seeds $((SEED + 1))..$((SEED + ROUNDS)); $(nproc) CPUs shared by loadgen" \
	"and the server; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg);" \
	"stores on $(stat -f -c %T "$TMP") ($WORKDIR_BASE), greyspf store $STORE${LMDB_SYNC:+ (sync = $LMDB_SYNC)}"

ratio() { # ratio A B: rate and p99 of A relative to B
	local a=$TMP/$1.json b=$TMP/$2.json
	[ -s "$a" ] && [ -s "$b" ] || return 0
	awk -v ra="$(jget "$a" requests_per_s)" -v rb="$(jget "$b" requests_per_s)" \
		-v pa="$(jget "$a" latency_ms.p99)" -v pb="$(jget "$b" latency_ms.p99)" \
		-v n="$1/$2" 'BEGIN {
		printf "%-17s requests/s x%.2f   p99 x%.3f\n", n,
			(rb > 0 ? ra / rb : 0), (pb > 0 ? pa / pb : 0) }'
}
ratio greyspf postgrey
ratio greyspf dunno

if [ -n "$JSON_OUT" ]; then
	$PY - "$TMP" "$JSON_OUT" "$HOLD" "$STORE" <<'PYEOF'
import json, os, sys
tmp, out, hold, store = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def read(name):
    try:
        with open(os.path.join(tmp, name)) as f:
            return f.read().split()
    except OSError:
        return None


res = {"greyspf_store": store}
for name in ("dunno", "postgrey", "greyspf"):
    p = os.path.join(tmp, name + ".json")
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        continue
    with open(p) as f:
        r = {"load": json.load(f)}
    for key, fname in (("cpu", ".cpu"), ("aux_cpu", ".auxcpu")):
        v = read(name + fname)
        if v and v[0].isdigit():
            r[key + "_percent"] = int(v[0])
            r[key + "_seconds"] = float(v[1])
    v = read(name + ".rounds")
    if v:
        r["requests_per_s_by_round"] = [float(x) for x in v]
    v = read(name + ".anon")
    if v and len(v) == 2 and v[0].isdigit() and v[1].isdigit():
        r["rssanon_kb_idle"], r["rssanon_kb_held"] = int(v[0]), int(v[1])
    v = read(name + ".rss")
    if v and v[0].isdigit():
        r["vmrss_kb_idle"] = int(v[0])
        if len(v) > 1 and v[1].isdigit():
            r["vmrss_kb_held"] = int(v[1])
            r["held_connections"] = hold
    res[name] = r
with open(out, "w") as f:
    json.dump(res, f, indent=1)
PYEOF
	echo "results written to $JSON_OUT"
fi
