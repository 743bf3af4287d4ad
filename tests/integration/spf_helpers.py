"""Helpers for the SPF integration tests: the DNS fixture and an SPF daemon.

`dnsfix` (pytest fixture, factory): dnsfix(zone, delay_ms=0) starts
tests/fixtures/dnsserver.py on a free loopback port with the zone (a
zonedata mapping, see the fixture's docstring) and a query log; stopped at
teardown. `spf_daemon(daemon, dns, ...)` starts greyspf with [dns] pointed
at it. Tests import both names from here (the fixture must be imported
into the test module for pytest to see it).

Run as a program, `spf_helpers.py load PORT CONNS SECONDS [TAG]` is the SPF
load generator of test_spf_load.py (a separate process, so that its work does
not delay the latency measurements of the test process).

ZONE is the zone every SPF test shares (names under example.com,
example.net, example.org; addresses from the documentation prefixes).
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, encode, req

PYTHON = "/usr/bin/python3"
FIXTURE = REPO / "tests" / "fixtures" / "dnsserver.py"
HOST = "mx.example.org"  # the daemon's hostname (receiver in headers)
GOOD_HELO = "mail.example.org"  # HELO that authorises all our clients
BAD_HELO = "badhelo.example.org"  # HELO whose record is "-all"

# Clients: authorised by example.com's record, and not.
PASS_IP = "192.0.2.10"
PASS_IP2 = "198.51.100.20"
PASS_IP6 = "2001:db8::25"
FAIL_IP = "192.0.2.99"

ZONE = {
    "example.com": [{"TXT": "v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 "
                            "ip6:2001:db8::25 -all exp=explain.example.com"}],
    "explain.example.com": [
        {"TXT": "%{i} is not one of %{d}'s designated mail servers."}],
    "noexp.example.com": [{"TXT": "v=spf1 -all"}],
    "softfail.example.com": [{"TXT": "v=spf1 ip4:192.0.2.10 ~all"}],
    "softfail.example.net": [{"TXT": "v=spf1 ~all"}],
    "neutral.example.com": [{"TXT": "v=spf1 ?all"}],
    "none.example.com": [{"A": "192.0.2.1"}],
    "permerror.example.com": [{"TXT": "v=spf1 ip4:192.0.2.300 -all"}],
    "timeout.example.com": ["TIMEOUT"],
    "mail.example.org": [{"TXT": "v=spf1 ip4:192.0.2.0/24 "
                                 "ip4:198.51.100.0/24 ip6:2001:db8::/32 "
                                 "-all"}],
    "badhelo.example.org": [{"TXT": "v=spf1 -all"}],
    "helo2.example.org": [{"TXT": "v=spf1 ip4:192.0.2.10 -all"}],
    # Explanations that must not break a reply: long, and with control
    # characters (a CR LF in a reply would end it early).
    "longexp.example.com": [{"TXT": "v=spf1 -all exp=longexp.example.net"}],
    "longexp.example.net": [{"TXT": ["x" * 250, "y" * 250]}],
    "ctlexp.example.com": [{"TXT": "v=spf1 -all exp=ctlexp.example.net"}],
    "ctlexp.example.net": [{"TXT": "bad\r\naction=OK\n\nx\x00\x7f\t"}],
}

PERMERROR_PROBLEM = ("syntax error in record of permerror.example.com: "
                     "column 12: invalid IPv4 network in 'ip4:192.0.2.300'")
TIMEOUT_PROBLEM = "DNS timeout looking up TXT timeout.example.com"


class DnsFixture:
    """One tests/fixtures/dnsserver.py process."""

    def __init__(self, workdir, zone, delay_ms=0, name="dns", nice=0):
        self.workdir = Path(workdir)
        self.zonefile = self.workdir / f"{name}-zone.json"
        self.logpath = self.workdir / f"{name}-queries.log"
        self.zonefile.write_text(json.dumps(zone))
        argv = [PYTHON, str(FIXTURE), "--port", "0", "--zone",
                str(self.zonefile), "--log", str(self.logpath)]
        if delay_ms:
            argv += ["--delay", str(delay_ms)]
        self.errpath = self.workdir / f"{name}-stderr.log"
        self._err = open(self.errpath, "wb")
        # nice: a load test's fixture yields the CPU to what it measures.
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._err, text=True,
            preexec_fn=(lambda: os.nice(nice)) if nice else None)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise AssertionError(f"DNS fixture did not start: {line!r} "
                                 f"{self.errpath.read_text()}")
        self.port = int(line)

    @property
    def server(self):
        return f"127.0.0.1@{self.port}"

    def queries(self):
        """["udp example.com. TXT", ...] so far."""
        try:
            return self.logpath.read_text().splitlines()
        except FileNotFoundError:
            return []

    def asked(self, name):
        """Queries whose name is name (any type, any transport)."""
        want = name.lower().rstrip(".") + "."
        return [q for q in self.queries()
                if q.split()[1:2] and q.split()[1].lower() == want]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()


@pytest.fixture
def dnsfix(workdir):
    made = []

    def make(zone=None, delay_ms=0, nice=0):
        f = DnsFixture(workdir, ZONE if zone is None else zone, delay_ms,
                       name=f"dns{len(made)}", nice=nice)
        made.append(f)
        return f

    yield make
    for f in made:
        f.stop()


def ini(section, opts):
    """An INI section (opts: dict, or list of (key, value))."""
    items = opts.items() if isinstance(opts, dict) else opts
    return f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in items) + \
        "\n"


def spf_daemon(daemon, dns, spf=None, greylist=None, top=None,
               overrides="", dns_timeout="1s", checks="spf", start=True,
               **kw):
    """A daemon with `checks` (default spf alone), hostname HOST, [dns]
    pointed at the fixture and the given [spf] options. overrides: INI
    text appended (override sections)."""
    t = {"hostname": HOST, "checks": checks}
    t.update(top or {})
    extra = ini("dns", {"servers": dns.server, "timeout": dns_timeout})
    extra += ini("spf", spf or {})
    extra += overrides
    return daemon(top=t, greylist=greylist, extra=extra, start=start, **kw)


def spf_req(sender, client=PASS_IP, helo=GOOD_HELO, **kw):
    """An RCPT request for an SPF test."""
    return req(client=client, sender=sender, helo=helo, **kw)


def msg(attrs, recipient, **changes):
    """Another RCPT of the same message (same instance and queue id)."""
    b = dict(attrs)
    b["recipient"] = recipient
    b.update(changes)
    return b


def spf_lines(d, queue_id):
    """The daemon's SPF result log lines for a queue id."""
    q = f'QUEUE_ID="{queue_id}";'
    return [m for m in d.msgs() if q in m and "identity=" in m]


def spf_logline(words, a, identity, action, problem=None, client=None):
    """The exact tumgreyspf-style line the engine logs for request a."""
    prob = f' problem="{problem}";' if problem else ""
    return (f'{words}: QUEUE_ID="{a["queue_id"]}"; identity={identity}; '
            f'client-ip={client or a["client_address"]}; '
            f'helo={a["helo_name"]}; envelope-from={a["sender"]}; '
            f'receiver={a["recipient"]};{prob} action={action};')


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# ---- load generator (run as a separate process) ---------------------------

# Hard bounds on one load run (team rule: load tests bounded in count and
# time).
LOAD_MAX_CONNS = 1000
LOAD_MAX_SECONDS = 30


async def _load_conn(i, port, deadline, stats, lat, tag):
    """One smtpd-like connection: request, wait for the reply, repeat.
    Every request has a sender domain never asked before, so each needs
    the (delayed) DNS fixture."""
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        stats["errors"] += 1
        return
    stats["connected"] += 1
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            a = req(client=f"192.0.2.{i % 250 + 1}",
                    sender=f"u{n}@c{i}-{n}.{tag}.load.example.net",
                    helo=GOOD_HELO, queue_id=f"L{i}x{n}",
                    instance=f"l.{i}.{n}")
            t0 = time.monotonic()
            w.write(encode(a))
            await w.drain()
            reply = await asyncio.wait_for(r.readuntil(b"\n\n"), 30)
            lat.append(time.monotonic() - t0)
            if not reply.startswith(b"action=") or reply.count(b"\n") != 2:
                stats["errors"] += 1
                break
            word = reply[7:].split(b" ", 1)[0].strip().decode()
            stats["actions"][word] = stats["actions"].get(word, 0) + 1
            stats["replies"] += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
        stats["errors"] += 1
    finally:
        w.close()


async def _load(port, conns, seconds, tag):
    stats = {"connected": 0, "replies": 0, "errors": 0, "actions": {}}
    lat = []
    deadline = time.monotonic() + seconds
    tasks = [asyncio.ensure_future(_load_conn(i, port, deadline, stats, lat,
                                             tag))
             for i in range(conns)]
    # "ready" once every connection is open (its first request sent).
    while stats["connected"] + stats["errors"] < conns:
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    lat.sort()
    if lat:
        stats["p50_ms"] = round(lat[len(lat) // 2] * 1000, 1)
        stats["p99_ms"] = round(lat[min(len(lat) - 1,
                                        int(len(lat) * 0.99))] * 1000, 1)
    print(json.dumps(stats), flush=True)


def _main(argv):
    if len(argv) not in (4, 5) or argv[0] != "load":
        print("usage: spf_helpers.py load PORT CONNS SECONDS [TAG]",
              file=sys.stderr)
        return 2
    port, conns, seconds = int(argv[1]), int(argv[2]), float(argv[3])
    # A run's sender domains are new to the resolver's cache: the tag
    # keeps a second run in one daemon from reusing the first one's.
    tag = argv[4] if len(argv) == 5 else "t"
    if not (0 < conns <= LOAD_MAX_CONNS and 0 < seconds <= LOAD_MAX_SECONDS):
        print("spf_helpers.py: load out of bounds", file=sys.stderr)
        return 2
    asyncio.run(_load(port, conns, seconds, tag))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
