#!/bin/bash
# spf-daemon-bench.sh - the daemon with SPF: `greyspf serve` with
# `checks = spf, greylist` next to Debian's postfix-policyd-spf-python
# (policyd-spf), same request mix from bench/loadgen, same DNS fixture and
# records, in one run. Prints one table (throughput, latency, memory) and
# the ratio. Bounded: about a minute.
#
#   bench/spf-daemon-bench.sh          # BUILD=build-sb by default
#
# Setup, the same for both servers:
#   DNS     tests/fixtures/dnsserver.py with bench/spf-daemon-zone.json;
#           20 sender domains (bench/spf-daemon-domains.txt, loadgen
#           --sender-domains): 10 with one record listing loadgen's client
#           ranges (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32), 10 with
#           an include chain of depth 3 whose last record lists them. Every
#           MAIL FROM check passes; every HELO name (mx.DOMAIN) has no
#           record (NXDOMAIN, result none). Both servers check HELO and
#           MAIL FROM. The DNS cache is warm: greyspf gets a warm-up run
#           first; each policyd-spf process checks every domain before it
#           accepts its connection (bench/policyd-spf-spawn.py). The fixture's
#           query log shows how many queries reached it while measuring.
#   load    loadgen -c 100 (Postfix's default smtpd process limit), full
#           Postfix 3.7 attribute set, repeat ratio 0.5, DURATION seconds.
#   greyspf checks = spf, greylist with [greylist] learning = yes: SPF for
#           HELO and MAIL FROM, then the greylist store (LMDB, sync = no,
#           the default) is read and written for every request, nothing is
#           deferred (so every request takes the full SPF path and the
#           greylist path; a whitelisted recipient would skip the store).
#           log = stderr (one line per decision, to a file).
#   policyd-spf  one process per connection, as spawn(8) runs it
#           (bench/policyd-spf-spawn.py; its header explains the DNS
#           redirection), Debian's default policyd-spf.conf.
#
# Memory: VmRSS (/proc/PID/status) of greyspf while it serves the 100
# connections (mid-run), its peak (VmHWM), and the sum of VmRSS (and of
# Pss, which shares common pages out) of the 100 policyd-spf processes
# mid-run.
#
# Settings (environment): BUILD=build-sb, DURATION=10, WARMUP=2,
# CONNECTIONS=100, KEEP=1 (keep the temporary directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-sb}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
GREYSPF=$BUILD/greyspf
LOADGEN=$BUILD/bench/loadgen
PY=/usr/bin/python3
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-100}
DOMAINS=$ROOT/bench/spf-daemon-domains.txt
ZONE=$ROOT/bench/spf-daemon-zone.json
START_TIMEOUT=90

die() { echo "spf-daemon-bench: $*" >&2; exit 2; }
[ -x "$GREYSPF" ] || die "missing $GREYSPF"
[ -x "$LOADGEN" ] || die "missing $LOADGEN"
[ -x /usr/bin/policyd-spf ] || die "needs postfix-policyd-spf-python"

TMP=$(mktemp -d /tmp/spf-daemon-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_listen() { # PORT PID
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$2" 2>/dev/null || return 1
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || true; }
# procsum PID...: "VmRSS_kB Pss_kB cpu_ticks alive" summed over the
# processes, read in one pass (a shell loop of awk calls over 100
# processes takes seconds on a loaded machine). smaps_rollup of a busy
# process sometimes fails to read: retried, else its VmRSS stands in.
procsum() {
	$PY - "$@" <<'PYEOF'
import sys
rss = pss = cpu = alive = 0
for pid in sys.argv[1:]:
    try:
        st = open("/proc/%s/status" % pid).read()
        stat = open("/proc/%s/stat" % pid).read()
    except OSError:
        continue
    r = int(st.split("VmRSS:")[1].split()[0])
    p = None
    for _ in range(5):
        try:
            for line in open("/proc/%s/smaps_rollup" % pid):
                if line.startswith("Pss:"):
                    p = int(line.split()[1])
            break
        except OSError:
            pass
    rss += r
    pss += p if p is not None else r
    f = stat.rsplit(")", 1)[1].split()
    cpu += int(f[11]) + int(f[12])
    alive += 1
print(rss, pss, cpu, alive)
PYEOF
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || true; }
queries() { wc -l <"$TMP/dns.log"; }

# DNS fixture
$PY "$ROOT/tests/fixtures/dnsserver.py" --port 0 --port-file "$TMP/dns.port" \
	--zone "$ZONE" --log "$TMP/dns.log" >/dev/null 2>"$TMP/dns.err" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/dns.port" ] && break; sleep 0.05; done
DNSPORT=$(cat "$TMP/dns.port")
touch "$TMP/dns.log"

LG=(--attrs full -r 0.5 --sender-domains "$DOMAINS" --json)

# ---- greyspf ----
GPORT=$(free_port)
mkdir "$TMP/store"
cat >"$TMP/greyspf.conf" <<EOF
# generated by bench/spf-daemon-bench.sh
listen = inet:127.0.0.1:$GPORT
user =
allow_root = yes
log = stderr
hostname = mx.bench.test
checks = spf, greylist

[store]
path = $TMP/store

[greylist]
learning = yes

[dns]
servers = 127.0.0.1@$DNSPORT
timeout = 5s
EOF
"$GREYSPF" serve -c "$TMP/greyspf.conf" >"$TMP/greyspf.log" 2>&1 &
GPID=$!
PIDS+=($GPID)
wait_listen "$GPORT" "$GPID" || { tail -5 "$TMP/greyspf.log" >&2; die "greyspf did not start"; }

echo "== greyspf: ${WARMUP}s warm-up, ${DURATION}s measured" >&2
timeout 90 "$LOADGEN" -c "$CONNECTIONS" -d "$WARMUP" --seed 7 "${LG[@]}" \
	"inet:127.0.0.1:$GPORT" >"$TMP/g.warm.json" || true
q0=$(queries)
c0=$(cpu_ticks "$GPID")
timeout 90 "$LOADGEN" -c "$CONNECTIONS" -d "$DURATION" --seed 1 "${LG[@]}" \
	"inet:127.0.0.1:$GPORT" >"$TMP/g.json" &
LGPID=$!
sleep "$(awk -v d="$DURATION" 'BEGIN {print d / 2}')"
G_RSS=$(status_kb "$GPID" VmRSS)
G_ANON=$(status_kb "$GPID" RssAnon)
G_FILE=$(status_kb "$GPID" RssFile)
wait "$LGPID" || true
c1=$(cpu_ticks "$GPID")
G_HWM=$(status_kb "$GPID" VmHWM)
G_Q=$(($(queries) - q0))
G_CPU=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" -v s="$DURATION" \
	'BEGIN {printf "%.0f", (b - a) / hz / s * 100}')
kill "$GPID"
wait "$GPID" 2>/dev/null || true

# ---- policyd-spf ----
PPORT=$(free_port)
cp /etc/postfix-policyd-spf-python/policyd-spf.conf "$TMP/policyd-spf.conf"
echo "== policyd-spf: starting $CONNECTIONS processes (warming their caches)" >&2
$PY "$ROOT/bench/policyd-spf-spawn.py" --listen "$PPORT" --dns-port "$DNSPORT" \
	--config "$TMP/policyd-spf.conf" --pool "$CONNECTIONS" \
	--domains "$DOMAINS" --warm-ip 192.0.2.1 >"$TMP/spawn.out" \
	2>"$TMP/spawn.err" &
SPID=$!
PIDS+=($SPID)
for ((i = 0; i < START_TIMEOUT * 10; i++)); do
	grep -q '^pids' "$TMP/spawn.out" && break
	kill -0 "$SPID" 2>/dev/null || { cat "$TMP/spawn.err" >&2; die "policyd-spf pool failed"; }
	sleep 0.1
done
grep -q '^pids' "$TMP/spawn.out" || die "policyd-spf pool not ready in ${START_TIMEOUT}s"
read -r -a KIDS <<<"$(sed -n 's/^pids //p' "$TMP/spawn.out")"
echo "== policyd-spf: ${DURATION}s measured" >&2
q0=$(queries)
read -r _ _ kc0 _ <<<"$(procsum "${KIDS[@]}")"
timeout 90 "$LOADGEN" -c "$CONNECTIONS" -d "$DURATION" --seed 1 "${LG[@]}" \
	"inet:127.0.0.1:$PPORT" >"$TMP/p.json" &
LGPID=$!
sleep "$(awk -v d="$DURATION" 'BEGIN {print d / 2}')"
read -r P_RSS P_PSS kc1 P_N <<<"$(procsum "${KIDS[@]}")"
wait "$LGPID" || true
P_Q=$(($(queries) - q0))
P_CPU=$(awk -v a="$kc0" -v b="$kc1" -v hz="$(getconf CLK_TCK)" -v s="$DURATION" \
	'BEGIN {printf "%.0f", (b - a) / hz / (s / 2) * 100}')
kill "$SPID" 2>/dev/null || true
wait "$SPID" 2>/dev/null || true

$PY - "$TMP" "$G_RSS" "$G_HWM" "$G_Q" "$G_CPU" "$P_RSS" "$P_PSS" "$P_N" \
	"$P_Q" "$P_CPU" "$CONNECTIONS" "$G_ANON" "$G_FILE" <<'EOF'
import json, sys
tmp = sys.argv[1]
g_rss, g_hwm, g_q, g_cpu, p_rss, p_pss, p_n, p_q, p_cpu, conns, g_anon, \
    g_file = (int(x) for x in sys.argv[2:15])
g = json.load(open(tmp + "/g.json"))
p = json.load(open(tmp + "/p.json"))
def row(name, r, q, cpu):
    lat = r["latency_ms"]
    acts = " ".join("%s=%s" % kv for kv in sorted(r["actions"].items()))
    per_cpu = r["requests_per_s"] / (cpu / 100) if cpu > 0 else 0
    print("| %s | %d | %.0f | %.0f | %.1f | %.1f | %.1f | %d | %s%% | %d | %s |" % (
        name, r["requests"], r["requests_per_s"], per_cpu, lat["p50"],
        lat["p99"], lat["max"], r["errors"], cpu, q, acts))
    return per_cpu
print()
print("| server | answered | requests/s | per CPU-second | p50 ms | p99 ms "
      "| max ms | errors | server CPU | DNS queries while measuring "
      "| actions |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
      "| --- |")
g_pc = row("greyspf (spf, greylist learning)", g, g_q, g_cpu)
p_pc = row("policyd-spf 2.9.4 x %d processes" % conns, p, p_q, p_cpu)
print()
print("ratio greyspf / policyd-spf: %.1fx requests/s, %.1fx per CPU-second" % (
    g["requests_per_s"] / p["requests_per_s"], g_pc / p_pc if p_pc else 0))
print("greyspf mid-run VmRSS = RssAnon %.1f MB + RssFile %.1f MB (+ shmem); "
      "RssFile includes the LMDB map's pages, which grow with the greylist "
      "database" % (g_anon / 1024, g_file / 1024))
print("memory, %d connections: greyspf VmRSS %.1f MB (peak VmHWM %.1f MB); "
      "policyd-spf %d processes: sum VmRSS %.1f MB (sum Pss %.1f MB), "
      "%.1f MB each" % (conns, g_rss / 1024, g_hwm / 1024, p_n,
                        p_rss / 1024, p_pss / 1024,
                        p_rss / 1024 / max(p_n, 1)))
print("load average at the end (1, 5, 15 min): %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
print("loadgen CPU: %s%% (greyspf run), %s%% (policyd-spf run)" % (
    g.get("loadgen_cpu_percent", "?"), p.get("loadgen_cpu_percent", "?")))
EOF
