"""Behaviour of the fixture DNS server, tests/fixtures/dnsserver.py.

Run: /usr/bin/python3 -m pytest -q tests/dns/test_dnsserver.py
"""
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "dnsserver.py")
START_LIMIT_S = 15
# The suite lives in shared/ beside the repository (CI) or in /work/shared.
SUITE_CANDIDATES = [
    os.environ.get("GREYSPF_SPF_SUITE", ""),
    os.path.join(HERE, "..", "..", "..", "shared", "spf-test-suite",
                 "rfc7208-tests.yml"),
    "/work/shared/spf-test-suite/rfc7208-tests.yml",
]
SUITE = next((p for p in SUITE_CANDIDATES if p and os.path.exists(p)), None)

ZONE = {
    "a.test": [{"A": "192.0.2.1"}, {"TXT": ["v=spf1 ", "-all"]}],
    "alias.test": [{"CNAME": "chain.test"}],
    "chain.test": [{"CNAME": "a.test"}],
    "loop1.test": [{"CNAME": "loop2.test"}],
    "loop2.test": [{"CNAME": "loop1.test"}],
    "dangling.test": [{"CNAME": "absent.test"}],
    "big.test": [{"TXT": ["x" * 200, "y" * 200, "z" * 200]}],
    "mx.test": [{"MX": [10, "mail.test"]}],
    "six.test": [{"AAAA": "2001:db8::1"}],
    "ptr.test": [{"PTR": "a.test"}],
    "ordered.test": [{"TXT": "v=spf1 -all"}, "TIMEOUT"],
}


class Server:
    def __init__(self, tmp_path, *args):
        self.port_file = str(tmp_path / ("port%d" % time.monotonic_ns()))
        self.log = str(tmp_path / "queries.log")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", FIXTURE, "--port", "0", "--port-file",
             self.port_file, "--log", self.log] + list(args),
            stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + START_LIMIT_S
        while not os.path.exists(self.port_file):
            assert self.proc.poll() is None, "fixture exited"
            assert time.monotonic() < deadline, "fixture did not start"
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read())
        # The same port is printed on stdout.
        assert int(self.proc.stdout.readline()) == self.port

    def query(self, name, rdtype, tcp=False, edns=-1, payload=1232,
              rdclass="IN", timeout=2.0):
        q = dns.message.make_query(name, rdtype, rdclass, use_edns=edns,
                                   payload=payload)
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port,
                                 timeout=timeout)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path, "--zone-json", json.dumps(ZONE))
    yield s
    s.stop()


def rrs(resp):
    return [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype),
             sorted(r.to_text() for r in rrset)) for rrset in resp.answer]


def test_answer_is_authoritative_and_case_insensitive(server):
    r = server.query("A.Test", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert not r.flags & dns.flags.RA
    assert r.flags & dns.flags.RD  # copied from the query
    assert rrs(r) == [("A.Test.", "A", ["192.0.2.1"])]


def test_multi_string_txt_is_one_record(server):
    r = server.query("a.test", "TXT")
    assert rrs(r) == [("a.test.", "TXT", ['"v=spf1 " "-all"'])]


def test_nxdomain_and_nodata_carry_a_soa(server):
    r = server.query("absent.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    r = server.query("a.test", "MX")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert r.authority[0].rdtype == dns.rdatatype.SOA


def test_other_types(server):
    assert rrs(server.query("mx.test", "MX")) == [
        ("mx.test.", "MX", ["10 mail.test."])]
    assert rrs(server.query("six.test", "AAAA")) == [
        ("six.test.", "AAAA", ["2001:db8::1"])]
    assert rrs(server.query("ptr.test", "PTR")) == [
        ("ptr.test.", "PTR", ["a.test."])]


def test_cname_chain_is_chased(server):
    r = server.query("alias.test", "A")
    assert rrs(r) == [("alias.test.", "CNAME", ["chain.test."]),
                      ("chain.test.", "CNAME", ["a.test."]),
                      ("a.test.", "A", ["192.0.2.1"])]
    r = server.query("dangling.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert rrs(r) == [("dangling.test.", "CNAME", ["absent.test."])]
    r = server.query("loop1.test", "A")  # ends, does not hang
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 2


def test_udp_truncates_without_edns_tcp_does_not(server):
    r = server.query("big.test", "TXT")
    assert r.flags & dns.flags.TC and not r.answer
    r = server.query("big.test", "TXT", edns=0, payload=1232)
    assert not r.flags & dns.flags.TC and r.answer
    r = server.query("big.test", "TXT", tcp=True)
    assert not r.flags & dns.flags.TC and r.answer
    with open(server.log) as f:
        lines = f.read().splitlines()
    assert "tcp big.test. TXT" in lines
    assert lines.count("udp big.test. TXT") == 2


def test_max_udp_caps_the_edns_size(tmp_path):
    s = Server(tmp_path, "--zone-json", json.dumps(ZONE), "--max-udp", "512")
    try:
        r = s.query("big.test", "TXT", edns=0, payload=4096)
        assert r.flags & dns.flags.TC
    finally:
        s.stop()


def test_timeout_item_and_record_order(server):
    assert rrs(server.query("ordered.test", "TXT"))[0][1] == "TXT"
    with pytest.raises(dns.exception.Timeout):
        server.query("ordered.test", "A", timeout=0.5)


def test_other_classes_refused(server):
    r = server.query("a.test", "TXT", rdclass="CH")
    assert r.rcode() == dns.rcode.REFUSED


def test_delay_is_concurrent(tmp_path):
    s = Server(tmp_path, "--zone-json", json.dumps(ZONE), "--delay", "300")
    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(lambda _: s.query("a.test", "A"),
                                    range(50)))
        took = time.monotonic() - t0
        assert all(a.answer for a in answers)
        assert 0.3 <= took < 1.5
    finally:
        s.stop()


def test_sigterm_stops_promptly(server):
    t0 = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - t0 < 2


@pytest.mark.skipif(SUITE is None, reason="SPF test suite not found")
def test_suite_scenario_semantics(tmp_path):
    # Scenario 2, "Record lookup".
    s = Server(tmp_path, "--suite", SUITE, "--scenario", "2")
    try:
        # SPF records are also served as TXT ...
        r = s.query("spfonly.example.net", "SPF")
        assert rrs(r)[0][1] == "SPF"
        # ... unless the owner says TXT: NONE.
        r = s.query("spfonly.example.net", "TXT")
        assert r.rcode() == dns.rcode.NOERROR and not r.answer
        # An explicit TXT stops the copy: one TXT record, not two.
        r = s.query("both.example.net", "TXT")
        assert len(r.answer) == 1 and len(r.answer[0]) == 1
        # TXT before TIMEOUT answers; other types time out.
        assert s.query("spftimeout.example.net", "TXT").answer
        with pytest.raises(dns.exception.Timeout):
            s.query("spftimeout.example.net", "A", timeout=0.5)
        with pytest.raises(dns.exception.Timeout):
            s.query("txttimeout.example.net", "TXT", timeout=0.5)
        # Names of other scenarios are absent.
        r = s.query("mail.example1.com", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN
    finally:
        s.stop()


@pytest.mark.skipif(SUITE is None, reason="SPF test suite not found")
def test_suite_all_scenarios_merged(tmp_path):
    s = Server(tmp_path, "--suite", SUITE)
    try:
        assert s.query("mail.example1.com", "A").answer  # scenario 3
        r = s.query("macro%percent  space%20url-space.example.com", "A")
        assert rrs(r)[0][2] == ["1.2.3.4"]
        # A multi-string SPF record stays one RR.
        r = s.query("example2.com", "TXT")
        assert rrs(r) == [("example2.com.", "TXT", ['"v=spf1" "mx"'])]
    finally:
        s.stop()


if __name__ == "__main__":
    sys.exit(pytest.main(["-q", __file__]))
