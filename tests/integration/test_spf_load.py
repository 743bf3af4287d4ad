"""SPF load does not slow greylist-only requests.

200 connections keep SPF requests in flight while the DNS fixture answers
every query after 200 ms (each request has a sender domain never seen
before, so none is answered from the resolver's cache). At the same time
one connection sends greylist-only requests (an override section
`[client 198.51.100.0/24] checks = greylist`) one after another; their
latency (first byte sent to the whole reply read, in this process) must
stay under 5 ms at the 99th percentile: the event loop is never blocked
by the SPF evaluations and DNS lookups in flight. Bounded: ~5 s of load.

What is measured is the daemon's event loop, so two things that are not
the daemon are kept out of the figure:
  * [store] sync = no: with sync = yes every group commit waits for
    fsync, whose latency is the disk's (on the test VM the greylist p99 is
    5-8 ms with no SPF load at all);
  * the load generator and the DNS fixture (Python, busy) run at nice 10,
    so that on a small machine they do not take the CPU from the daemon
    and from this process while it times a request.
"""

import json
import os
import subprocess
import time
from pathlib import Path

from helpers import req
from spf_helpers import PYTHON, dnsfix, ini, spf_daemon

assert dnsfix  # a pytest fixture, used by name

# Harness processes' nice value (see above).
HARNESS_NICE = 10
SPF_CONNS = 200
DNS_DELAY_MS = 200
LOAD_SECONDS = 5.0
P99_LIMIT_MS = 5.0
ATTEMPTS = 2
HELPERS = Path(__file__).resolve().parent / "spf_helpers.py"


def pct(sorted_vals, p):
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p))]


def measure(d, dns, c, tag):
    """One run: SPF load for LOAD_SECONDS, greylist-only requests timed
    meanwhile. Returns (p99 ms, report text); asserts the load was real."""
    load = subprocess.Popen([PYTHON, str(HELPERS), "load", str(d.port),
                             str(SPF_CONNS), str(LOAD_SECONDS), tag],
                            stdout=subprocess.PIPE, text=True,
                            cwd=str(HELPERS.parent),
                            preexec_fn=lambda: os.nice(HARNESS_NICE))
    try:
        assert load.stdout.readline().strip() == "ready"
        started = time.monotonic()
        # Let the first wave of SPF lookups reach the fixture.
        time.sleep(0.3)
        queries_before = len(dns.queries())
        lat = []
        replies = {}
        n = 0
        end = started + LOAD_SECONDS - 0.5
        while time.monotonic() < end:
            n += 1
            a = req(client=f"198.51.100.{n % 200 + 1}")
            t0 = time.perf_counter()
            r = c.request(a)
            lat.append((time.perf_counter() - t0) * 1000)
            w = r.split(" ", 1)[0]
            replies[w] = replies.get(w, 0) + 1
            time.sleep(0.002)
        queries_during = len(dns.queries()) - queries_before
        out, _ = load.communicate(timeout=60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    stats = json.loads(out.strip().splitlines()[-1])
    lat.sort()
    p50, p99, worst = pct(lat, 0.5), pct(lat, 0.99), lat[-1]
    report = (f"greylist-only: {len(lat)} requests, p50 {p50:.2f} ms, "
              f"p99 {p99:.2f} ms, max {worst:.2f} ms; SPF load: "
              f"{stats['replies']} replies on {stats['connected']} "
              f"connections, p50 {stats.get('p50_ms')} ms, p99 "
              f"{stats.get('p99_ms')} ms, errors {stats['errors']}, "
              f"{queries_during} DNS queries during the measurement")
    print(report)
    # The load was real: every connection open, SPF answered only after
    # the DNS delay, lots of lookups in flight during the measurement.
    assert stats["errors"] == 0, stats
    assert stats["connected"] == SPF_CONNS
    assert stats["p50_ms"] >= DNS_DELAY_MS, stats
    assert stats["replies"] >= SPF_CONNS * 2, stats
    assert queries_during >= SPF_CONNS * 2, queries_during
    # Greylist-only requests were greylisted, not SPF-checked.
    assert set(replies) == {"DEFER_IF_PERMIT"}, replies
    assert len(lat) >= 200
    return p99, report


def test_greylist_latency_under_spf_load(daemon, dnsfix):
    dns = dnsfix(delay_ms=DNS_DELAY_MS, nice=HARNESS_NICE)
    d = spf_daemon(daemon, dns, dns_timeout="5s", store={"sync": "no"},
                   overrides=ini("client 198.51.100.0/24",
                                 {"checks": "greylist"}))
    c = d.client()
    # Warm up the greylist path (store open, first commit).
    for i in range(20):
        c.request(req(client=f"198.51.100.{i % 200 + 1}"))
    # A second run only if the first missed: on a shared 2-CPU machine
    # other jobs can steal the CPU for milliseconds; a daemon that blocks
    # its loop misses both.
    reports = []
    for attempt in range(ATTEMPTS):
        p99, report = measure(d, dns, c, f"run{attempt}")
        reports.append(report)
        if p99 < P99_LIMIT_MS:
            break
    Path(os.environ.get("GREYSPF_LOAD_REPORT", "/dev/null")).write_text(
        "\n".join(reports) + "\n")
    assert p99 < P99_LIMIT_MS, reports
