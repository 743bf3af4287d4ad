#!/bin/bash
# spf-bench.sh - SPF engine + resolver throughput (warm cache) against the
# DNS fixture, pyspf on the same records and fixture in the same run, and
# 1,000 evaluations in flight against a fixture that delays every answer
# by 100 ms. Prints one table. Bounded: about 40 s.
#
#   bench/spf-bench.sh            # BUILD=build-sb by default
#   BUILD=build N=200000 bench/spf-bench.sh
#
# Needs: the build's tests/spfbench/spf_resolver_bench, Debian python3-spf
# and python3-dnspython (/usr/bin/python3), taskset (util-linux).
# "One core": greyspf's process (its event-loop thread and libunbound's
# resolver thread) is pinned to CPU 0 with taskset; the fixture and pyspf's
# DNS server run on CPU 1. pyspf runs pinned to CPU 0 too.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-sb}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BENCH=$BUILD/tests/spfbench/spf_resolver_bench
PY=/usr/bin/python3
N=${N:-100000}         # timed evaluations per greyspf run (~4 s each)
PYSECS=${PYSECS:-5}    # seconds per pyspf run
BULK=${BULK:-1000}     # evaluations in flight in the delayed-DNS test
DELAY_MS=100

[ -x "$BENCH" ] || { echo "missing $BENCH (build the tree)" >&2; exit 2; }
$PY -c 'import spf, dns.resolver' 2>/dev/null ||
	{ echo "needs python3-spf and python3-dnspython" >&2; exit 2; }

CPU_ME=() CPU_OTHER=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	CPU_ME=(taskset -c 0) CPU_OTHER=(taskset -c 1)
fi

TMP=$(mktemp -d /tmp/spf-bench.XXXXXX)
FIX_PIDS=()
cleanup() {
	for p in "${FIX_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

# start_fixture NAME ARGS...: starts the DNS fixture, sets PORT.
start_fixture() {
	local name=$1
	shift
	"${CPU_OTHER[@]}" $PY "$ROOT/tests/fixtures/dnsserver.py" --port 0 \
		--port-file "$TMP/$name.port" "$@" >"$TMP/$name.out" \
		2>"$TMP/$name.err" &
	FIX_PIDS+=($!)
	for _ in $(seq 100); do
		[ -s "$TMP/$name.port" ] && break
		sleep 0.05
	done
	PORT=$(cat "$TMP/$name.port")
}

jget() { $PY -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

start_fixture mix --zone "$ROOT/bench/spf-zone.json" --log "$TMP/mix.log"
MIXPORT=$PORT

echo "greyspf engine + libunbound resolver, warm cache ($N evaluations per run)" >&2
G1=$(timeout 60 "${CPU_ME[@]}" "$BENCH" --dns "127.0.0.1@$MIXPORT" -n "$N" -k 100 --json)
Q_AFTER_FIRST=$(wc -l <"$TMP/mix.log")
G2=$(timeout 60 "$BENCH" --dns "127.0.0.1@$MIXPORT" -n "$N" -k 100 --json)
G3=$(timeout 60 "${CPU_ME[@]}" "$BENCH" --dns "127.0.0.1@$MIXPORT" -n "$N" -k 1000 --json)
G4=$(timeout 60 "${CPU_ME[@]}" "$BENCH" --dns "127.0.0.1@$MIXPORT" -n "$((N / 4))" -k 1 --json)

echo "pyspf, same records, same fixture" >&2
P1=$(timeout 60 "${CPU_ME[@]}" $PY "$ROOT/bench/spf-pyspf-bench.py" --port "$MIXPORT" --seconds "$PYSECS" --json)
P2=$(timeout 60 "${CPU_ME[@]}" $PY "$ROOT/bench/spf-pyspf-bench.py" --port "$MIXPORT" --seconds "$PYSECS" --no-cache --json)

echo "$BULK distinct domains in flight, fixture --delay $DELAY_MS" >&2
$PY - "$BULK" >"$TMP/bulk.json" <<'EOF'
import json, sys
n = int(sys.argv[1])
json.dump({"d%06d.bulk.test" % i: [{"TXT": "v=spf1 a -all"},
                                   {"A": "192.0.2.77"}] for i in range(n)},
          sys.stdout)
EOF
start_fixture bulk --zone "$TMP/bulk.json" --delay "$DELAY_MS" --log "$TMP/bulk.log"
D1=$(timeout 60 "${CPU_ME[@]}" "$BENCH" --dns "127.0.0.1@$PORT" --distinct "$BULK" --json)
BULKQ=$(wc -l <"$TMP/bulk.log")

$PY - "$G1" "$G2" "$G3" "$G4" "$P1" "$P2" "$D1" "$Q_AFTER_FIRST" "$BULKQ" "$DELAY_MS" \
	"${#CPU_ME[@]}" <<'EOF'
import json, sys
g1, g2, g3, g4, p1, p2, d1 = (json.loads(a) for a in sys.argv[1:8])
q_first, bulkq, delay, pinned = (int(a) for a in sys.argv[8:12])
pin = "CPU 0" if pinned else "unpinned"
rows = [
    ("greyspf, K=100 in flight, one core (%s)" % pin, g1),
    ("greyspf, K=100 in flight, unpinned (2 cores)", g2),
    ("greyspf, K=1000 in flight, one core", g3),
    ("greyspf, K=1 (one at a time), one core", g4),
    ("pyspf 2.0.14, dnspython in-process cache", p1),
    ("pyspf 2.0.14, no cache (every query to the fixture)", p2),
]
print()
print("| run | evaluations | seconds | evaluations/s | per CPU-second "
      "| wrong |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for name, r in rows:
    print("| %s | %d | %.3f | %d | %d | %d |" % (
        name, r["evaluations"], r["seconds"], r["rate"],
        r["evaluations"] / r["cpu_seconds"], r["wrong"]))
print()
print("fixture queries during the first greyspf run (warm-up included): %d"
      % q_first)
print("load average at the end (1, 5, 15 min): %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
print("ratio greyspf (one core, K=100) / pyspf cached:   %.1fx"
      % (g1["rate"] / p1["rate"]))
print("ratio greyspf (one core, K=100) / pyspf uncached: %.1fx"
      % (g1["rate"] / p2["rate"]))
print("ratio greyspf (one core, K=1)   / pyspf cached:   %.1fx"
      % (g4["rate"] / p1["rate"]))
print("ratio per CPU-second, greyspf (K=100) / pyspf cached: %.1fx"
      % (g1["evaluations"] / g1["cpu_seconds"] /
         (p1["evaluations"] / p1["cpu_seconds"])))
print()
print("%d evaluations, all in flight, distinct domains, fixture --delay %d ms "
      "(2 lookups each, in sequence): %.3f s total, %d fixture queries, "
      "%d wrong" % (d1["evaluations"], delay, d1["seconds"], bulkq,
                    d1["wrong"]))
bad = sum(r["wrong"] for _, r in rows) + d1["wrong"]
sys.exit(1 if bad else 0)
EOF
