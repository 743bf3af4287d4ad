#!/usr/bin/python3
"""Every owner of the SPF test suite's zone data, looked up for A, AAAA, MX,
TXT and PTR through greyspf's resolver (dns_bulk), must give what the
fixture server answers when asked directly.

    suite_crosscheck.py DNS_BULK [SUITE_YML]

Differences that are the resolver's job and expected:
  * a name that never answers (TIMEOUT) may end as timeout or servfail
    (libunbound gives up on a dead name by itself);
  * a CNAME loop is servfail (RFC 1034 section 3.6.2: an error).
Exit 0 if all agree, 1 otherwise, 77 (skipped) if the suite is missing.
"""
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "dnsserver.py")
SUITE_CANDIDATES = [
    os.path.join(HERE, "..", "..", "..", "shared", "spf-test-suite",
                 "rfc7208-tests.yml"),
    "/work/shared/spf-test-suite/rfc7208-tests.yml",
]
TYPES = {1: "A", 28: "AAAA", 15: "MX", 16: "TXT", 12: "PTR"}
DIRECT_TIMEOUT_S = 1.0
RESOLVER_TIMEOUT_S = "1.5"
START_LIMIT_S = 15
RUN_LIMIT_S = 120


def start_fixture(tmp, suite):
    port_file = os.path.join(tmp, "port")
    proc = subprocess.Popen(["/usr/bin/python3", FIXTURE, "--port", "0",
                             "--port-file", port_file, "--suite", suite],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + START_LIMIT_S
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("fixture did not start")
        time.sleep(0.05)
    with open(port_file) as f:
        return proc, int(f.read())


def presentation(name):
    return name.to_text(omit_final_dot=True).lower() or "."


def direct(port, name, rdtype):
    """What the fixture says, in dns_bulk's terms."""
    q = dns.message.make_query(name, rdtype)
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=DIRECT_TIMEOUT_S)
    except dns.exception.Timeout:
        return ("timeout",)
    if r.flags & dns.flags.TC:
        r = dns.query.tcp(q, "127.0.0.1", port=port, timeout=2)
    if r.rcode() == dns.rcode.NXDOMAIN:
        return ("nxdomain",)
    recs, seen, loop = [], set(), False
    for rrset in r.answer:
        if rrset.rdtype == 5:
            seen.add(rrset.name)
            loop = loop or rrset[0].target in seen
        if rrset.rdtype != rdtype:
            continue
        for rd in rrset:
            if rdtype in (1, 28):
                recs.append(str(ipaddress.ip_address(rd.address)))
            elif rdtype == 15:
                recs.append("%d %s" % (rd.preference,
                                       presentation(rd.exchange)))
            elif rdtype == 12:
                recs.append("0 %s" % presentation(rd.target))
            else:
                recs.append(b"".join(rd.strings).hex())
    if loop:
        return ("servfail",)
    if not recs:
        return ("nodata",)
    return ("ok",) + tuple(sorted(recs))


def main():
    bulk = sys.argv[1]
    suite = sys.argv[2] if len(sys.argv) > 2 else next(
        (p for p in SUITE_CANDIDATES if os.path.exists(p)), None)
    if not suite or not os.path.exists(suite):
        print("SPF test suite not found: skipped")
        return 77
    with open(suite, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    names = set()
    for doc in docs:
        for owner in doc.get("zonedata") or {}:
            try:
                names.add(dns.name.from_text(str(owner)))
            except dns.exception.DNSException:
                pass
    items = [(n, t) for n in sorted(names) for t in TYPES]
    with tempfile.TemporaryDirectory(prefix="greyspf-xcheck-") as tmp:
        proc, port = start_fixture(tmp, suite)
        try:
            with ThreadPoolExecutor(64) as pool:
                want = dict(zip(items, pool.map(
                    lambda it: direct(port, *it), items)))
            text = "".join("%s\t%d\n" % (n.to_text(omit_final_dot=True), t)
                           for n, t in items)
            out = subprocess.run([bulk, "127.0.0.1@%d" % port,
                                  RESOLVER_TIMEOUT_S], input=text,
                                 capture_output=True, text=True,
                                 timeout=RUN_LIMIT_S)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(5)
    if out.returncode != 0:
        print(out.stderr)
        return 1
    got = {}
    for line in out.stdout.splitlines():
        f = line.split("\t")
        key = (dns.name.from_text(f[0]), int(f[1]))
        got[key] = (f[2],) + (tuple(sorted(f[4:])) if f[2] == "ok" else ())
    bad = 0
    for key in items:
        w, g = want[key], got.get(key)
        if w == g or (w == ("timeout",) and g in (("timeout",),
                                                    ("servfail",))):
            continue
        bad += 1
        print("MISMATCH %s %s: fixture %.120s resolver %.120s"
              % (key[0], TYPES[key[1]], w, g))
    print("%d lookups, %d mismatches" % (len(items), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
