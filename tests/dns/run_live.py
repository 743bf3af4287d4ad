#!/usr/bin/python3
"""Runs dns_live_test against two instances of tests/fixtures/dnsserver.py.

    run_live.py BINARY

Server 1 serves tests/dns/zone.json, truncates UDP answers over 512 bytes
(--max-udp 512, so big TXT records come over TCP) and logs its queries, on 127.0.0.1 and ::1;
server 2 serves load0.test..load999.test and answers after 100 ms. Both are
stopped with SIGTERM at the end (killed if they do not stop in 5 s). The
exit status is the test program's.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "dnsserver.py")
PYTHON = "/usr/bin/python3"
START_LIMIT_S = 15
STOP_LIMIT_S = 5
LOAD_NAMES = 1000
SLOW_DELAY_MS = 100
TEST_LIMIT_S = 120


def start(tmp, tag, extra):
    port_file = os.path.join(tmp, tag + ".port")
    proc = subprocess.Popen([PYTHON, FIXTURE, "--port", "0", "--port-file",
                             port_file] + extra, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + START_LIMIT_S
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("dnsserver %s did not start" % tag)
        time.sleep(0.05)
    with open(port_file) as f:
        return proc, int(f.read())


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    binary = sys.argv[1]
    procs = []
    with tempfile.TemporaryDirectory(prefix="greyspf-dns-") as tmp:
        log = os.path.join(tmp, "queries.log")
        load_zone = os.path.join(tmp, "load.json")
        with open(load_zone, "w") as f:
            json.dump({"load%d.test" % i: [{"A": "192.0.2.%d" % (i % 250 + 1)}]
                       for i in range(LOAD_NAMES)}, f)
        try:
            p1, port1 = start(tmp, "main", [
                "--zone", os.path.join(HERE, "zone.json"),
                "--max-udp", "512", "--log", log, "--ipv6"])
            procs.append(p1)
            p2, port2 = start(tmp, "slow", [
                "--zone", load_zone, "--delay", str(SLOW_DELAY_MS)])
            procs.append(p2)
            rc = subprocess.call([binary, str(port1), log, str(port2)],
                                 timeout=TEST_LIMIT_S)
        finally:
            for p in procs:
                stop(p)
    return rc


if __name__ == "__main__":
    sys.exit(main())
