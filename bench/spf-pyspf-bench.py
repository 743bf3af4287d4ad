#!/usr/bin/python3
"""spf-pyspf-bench - the peer of tests/spfbench/spf_resolver_bench: pyspf
(Debian python3-spf) evaluating the same mix of records against the same
DNS fixture (bench/spf-zone.json).

pyspf resolves through dnspython's module-level default resolver
(spf.DNSLookup -> dns.resolver.query -> dns.resolver.get_default_resolver()),
which normally reads /etc/resolv.conf and has no cache. We replace it
before the first check with a Resolver(configure=False) whose nameservers
are [127.0.0.1] and port is the fixture's. With --cache (the default) it
also gets a dns.resolver.Cache(), so after the warm-up pass no query leaves
the process: the warm-cache case, pyspf's best case. --no-cache asks the
fixture for every query (what pyspf does in production, where a local
caching resolver answers).

pyspf is synchronous: one evaluation at a time (one thread), so "in flight"
is 1. The run stops after --count evaluations or --seconds, whichever comes
first; the rate is evaluations / elapsed.

Usage: spf-pyspf-bench.py --port P [--count N] [--seconds S] [--no-cache]
                          [--json]
Exit status 1 if any result differs from the expected one.
"""

import argparse
import json
import sys
import time

import dns.resolver
import spf

# Same cases as spf_resolver_bench.c: (client, sender, expected result).
CASES = [
    ("192.0.2.10", "alice@ip4.bench.test", "pass"),
    ("198.51.100.20", "bob@inc.bench.test", "pass"),
    ("203.0.113.4", "carol@mx.bench.test", "pass"),
    ("192.0.2.99", "dave@fail.bench.test", "fail"),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=100000)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = a.port
    res.lifetime = 10.0
    if not a.no_cache:
        res.cache = dns.resolver.Cache()
    dns.resolver.default_resolver = res

    wrong = 0
    first_wrong = None

    def check(i):
        nonlocal wrong, first_wrong
        ip, sender, expect = CASES[i % len(CASES)]
        result, _exp = spf.check2(i=ip, s=sender, h="mx.client.test")
        if result != expect:
            wrong += 1
            first_wrong = first_wrong or (sender, result)

    for i in range(len(CASES) * 4):  # warm the cache (and the imports)
        check(i)
    wrong_warm = wrong
    n = 0
    t0 = time.monotonic()
    c0 = time.process_time()
    deadline = t0 + a.seconds
    while n < a.count:
        check(n)
        n += 1
        if n % 64 == 0 and time.monotonic() >= deadline:
            break
    s = time.monotonic() - t0
    cpu = time.process_time() - c0
    out = {"mode": "pyspf", "cache": not a.no_cache, "evaluations": n,
           "seconds": round(s, 4), "cpu_seconds": round(cpu, 4),
           "rate": round(n / s), "wrong": wrong - wrong_warm}
    if a.json:
        print(json.dumps(out))
    else:
        print("pyspf %s: %d evaluations in %.3f s: %.0f evaluations/s, "
              "%d wrong" % ("cached" if out["cache"] else "uncached", n, s,
                            n / s, out["wrong"]))
    if wrong:
        print("spf-pyspf-bench: %d unexpected results, first %r"
              % (wrong, first_wrong), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
