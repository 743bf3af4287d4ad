#!/usr/bin/python3
"""tcp_fallback - a large SPF record reaches `greyspf check` over TCP.

Two cases:
  * a ~900-byte SPF record, the fixture told to truncate every UDP answer
    above 512 bytes (--max-udp 512: a server or path without EDNS, the
    classic limit of RFC 1035 section 2.3.4);
  * a ~1500-byte record with the fixture honouring the query's EDNS size
    (libunbound advertises 1232 by default), so it is truncated anyway.
The record is one TXT RR made of several character-strings. The resolver
must retry over TCP (RFC 7766) and the check must pass for an address
listed only in the record's last string. The fixture's query log must
show the TXT query over UDP and then over TCP.

Usage: tcp_fallback.py GREYSPF_BIN; exit 0 on success.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "dnsserver.py"
PYTHON = "/usr/bin/python3"
# RFC 1035 section 2.3.4: DNS over UDP without EDNS carries 512 bytes.
UDP_PLAIN_MAX = 512
# (minimum record size, --max-udp or None) per case
CASES = [(850, UDP_PLAIN_MAX), (1400, None)]
CLIENT = "198.51.100.77"


def record_strings(size_min):
    """The record as character-strings of at most 255 bytes; the client
    address is authorised only by the last mechanism."""
    mechs = ["v=spf1"]
    i = 0
    while len(" ".join(mechs)) < size_min:
        i += 1
        mechs.append(f"ip4:192.0.{i // 250}.{i % 250 + 1}")
    mechs.append(f"ip4:{CLIENT}")
    mechs.append("-all")
    text = " ".join(mechs)
    # Split inside the text, not at term boundaries: the strings of one RR
    # are concatenated without a space (RFC 7208 section 3.3).
    return [text[i:i + 200] for i in range(0, len(text), 200)], text


def run_case(binary, size_min, max_udp):
    """Returns a list of failure texts."""
    strings, text = record_strings(size_min)
    tmp = Path(tempfile.mkdtemp(prefix="spfwire-tcp-"))
    zone = tmp / "zone.json"
    log = tmp / "queries.log"
    zone.write_text(json.dumps({"example.com": [{"TXT": strings}]}))
    argv = [PYTHON, str(FIXTURE), "--port", "0", "--zone", str(zone),
            "--log", str(log)]
    if max_udp:
        argv += ["--max-udp", str(max_udp)]
    fx = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    failures = []
    try:
        port = int(fx.stdout.readline())
        p = subprocess.run([binary, "check", "--ip", CLIENT, "--sender",
                            "user@example.com", "--helo", "mx.example.com",
                            "--dns", f"127.0.0.1@{port}", "--dns-timeout",
                            "3", "--json"],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            failures.append(f"greyspf check exited {p.returncode}: "
                            f"{p.stderr.strip()}")
        else:
            out = json.loads(p.stdout)
            if out["result"] != "pass":
                failures.append(f"result {out['result']} (problem "
                                f"{out.get('problem')!r}), expected pass")
            if out.get("mechanism") != f"ip4:{CLIENT}":
                failures.append(f"mechanism {out.get('mechanism')!r}, "
                                f"expected ip4:{CLIENT}")
    finally:
        fx.terminate()
        fx.wait(10)
    queries = log.read_text().splitlines() if log.exists() else []
    txt = [q for q in queries if q.split()[1:] == ["example.com.", "TXT"]]
    if not any(q.startswith("udp ") for q in txt):
        failures.append(f"no UDP TXT query in the log: {queries}")
    if not any(q.startswith("tcp ") for q in txt):
        failures.append(f"no TCP TXT query in the log: {queries}")
    elif txt[0].startswith("tcp "):
        failures.append(f"TCP before UDP: {txt}")
    print(f"{'FAIL' if failures else 'ok  '} record {len(text)} bytes in "
          f"{len(strings)} strings, max-udp {max_udp or 'EDNS'}; "
          f"queries: {txt}")
    for f in failures:
        print("     " + f)
    return failures


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    failed = sum(1 for size_min, max_udp in CASES
                 if run_case(sys.argv[1], size_min, max_udp))
    print(f"{len(CASES) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
