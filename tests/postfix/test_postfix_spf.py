"""SPF through a real Postfix (inet mode of doc/postfix.md, `checks = spf`),
with tests/fixtures/dnsserver.py as the authoritative DNS for the sender
domains. Loopback clients are SPF-checked here: `skip_clients` names only
the one address the skip scenario uses.

Skipped (with the reason) only while this greyspf has no SPF: no
`greyspf check` command or no [spf] configuration section."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

import pfharness as h
from pfenv import TEST_HEAD, Env

FIXTURE = h.REPO / "tests" / "fixtures" / "dnsserver.py"

# The one client greyspf does not SPF-check ([spf] skip_clients).
SKIPPED_CLIENT = "127.0.200.200"
# UDP answers above this are truncated by the fixture (TC), so the resolver
# must retry over TCP: the classic 512-octet limit of RFC 1035.
MAX_UDP = 512

FILLER = " ".join(f"ip4:192.0.2.{n}" for n in range(1, 41))
BIG_RECORD = f"v=spf1 {FILLER} ip4:127.0.0.0/8 -all"
assert len(BIG_RECORD) > MAX_UDP


def txt_strings(text, size=255):
    """One TXT RR's character-strings (at most 255 octets each)."""
    return [text[i:i + size] for i in range(0, len(text), size)]


ZONE = {
    "fail.spf.test": [{"TXT": "v=spf1 -all exp=why.fail.spf.test"}],
    "why.fail.spf.test": [{"TXT": "%{s} may not send mail from %{i}"}],
    "softfail.spf.test": [{"TXT": "v=spf1 ~all"}],
    "softreject.spf.test": [{"TXT": "v=spf1 ~all"}],
    "big.spf.test": [{"TXT": txt_strings(BIG_RECORD)}],
}

SPF_TAIL = """
[store]
backend = lmdb
path = {{store}}

[dns]
servers = 127.0.0.1@{dns_port}
timeout = 2s

[spf]
skip_clients = {skipped}

[sender softreject.spf.test]
mailfrom_softfail = reject
"""


def spf_missing():
    """Why this greyspf cannot do SPF yet, or None when it can."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write("[spf]\nskip_clients = 127.0.0.1\n")
        f.flush()
        p = subprocess.run([h.greyspf_bin(), "config", "-c", f.name],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        if p.returncode != 0:
            return f"greyspf has no [spf] section yet: {p.stdout.strip()}"
    p = subprocess.run([h.greyspf_bin(), "check", "--help"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    if p.returncode != 0:
        return f"greyspf has no `check` command yet: {p.stdout.strip()}"
    return None


class DnsFixture:
    def __init__(self, root, zone):
        self.dir = Path(root) / "dns"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "queries.log"
        port_file = self.dir / "port"
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(FIXTURE), "--port", "0", "--port-file",
             str(port_file), "--zone-json", json.dumps(zone), "--ttl", "1",
             "--max-udp", str(MAX_UDP), "--log", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr", "wb"))

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("dnsserver exited: " +
                                   (self.dir / "stderr").read_text())
            try:
                return int(port_file.read_text().strip())
            except (FileNotFoundError, ValueError):
                return None

        self.port = h.wait_for(ready, h.START_TIMEOUT, "dnsserver")

    def queries(self):
        try:
            return self.log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def spf_env(snippets):
    why = spf_missing()
    if why:
        pytest.skip(why)
    root = h.make_root("greyspf-pf-spf-")
    dns = DnsFixture(root, ZONE)
    env = Env("inet", root, snippets, gs_head_extra=TEST_HEAD +
              "checks = spf\n", gs_tail=SPF_TAIL.format(
                  dns_port=dns.port, skipped=SKIPPED_CLIENT))
    env.dns = dns
    try:
        env.start()
        yield env
    finally:
        env.stop()
        dns.stop()
    reports = env.sanitizer_reports()
    if reports:
        pytest.fail(f"sanitizer reports (kept {root}):\n" +
                    "\n".join(reports)[-8000:], pytrace=False)
    if not os.environ.get("GREYSPF_PF_KEEP"):
        h.remove_root(root)


@pytest.fixture
def senv(request, spf_env):
    yield spf_env
    if getattr(request.node, "rep_call_failed", False):
        print(spf_env.diagnostics())


def codes(session):
    return [(r.code, r.enhanced) for r in session.rcpt]


def test_spf_fail_rejected_with_explanation(senv):
    client = senv.client()
    s = senv.send(client, "mallory@fail.spf.test",
                  [f"victim.fail@{h.RCPT_DOMAIN}"], "spf fail")
    assert codes(s) == [("550", "5.7.23")], s
    text = s.rcpt[0].text
    assert f"mallory@fail.spf.test may not send mail from {client}" in text, s
    assert s.data_end is None, s
    assert senv.pf.delivered_now("spf fail") == []


def test_spf_softfail_delivered_with_header(senv):
    s = senv.send(senv.client(), "someone@softfail.spf.test",
                  [f"soft.one@{h.RCPT_DOMAIN}"], "spf softfail")
    assert codes(s) == [("250", "2.1.5")], s
    assert s.data_end is not None and s.data_end.code == "250", s
    (copy,) = senv.pf.delivered("spf softfail")
    (rs,) = h.header_values(copy, "Received-SPF")
    assert rs.lower().startswith("softfail"), rs


def test_spf_softfail_reject_override(senv):
    """mailfrom_softfail = reject (an override section for this sender
    domain) turns softfail into a 550."""
    s = senv.send(senv.client(), "someone@softreject.spf.test",
                  [f"soft.two@{h.RCPT_DOMAIN}"], "spf softreject")
    assert [r.code for r in s.rcpt] == ["550"], s
    assert s.rcpt[0].enhanced.startswith("5.7."), s
    assert s.data_end is None, s


def test_spf_one_header_for_three_recipients(senv):
    rcpts = [f"{u}.three@{h.RCPT_DOMAIN}" for u in ("x", "y", "z")]
    s = senv.send(senv.client(), "other@softfail.spf.test", rcpts,
                  "spf three")
    assert codes(s) == [("250", "2.1.5")] * 3, s
    copies = senv.pf.delivered("spf three", count=3)
    for c in copies:
        assert len(h.header_values(c, "Received-SPF")) == 1, c


def test_spf_skip_clients(senv):
    """A client in skip_clients is not SPF-checked: a sender whose domain
    says -all is accepted, without a Received-SPF header."""
    s = senv.send(SKIPPED_CLIENT, "mallory@fail.spf.test",
                  [f"skipped@{h.RCPT_DOMAIN}"], "spf skipped")
    assert codes(s) == [("250", "2.1.5")], s
    (copy,) = senv.pf.delivered("spf skipped")
    assert h.header_values(copy, "Received-SPF") == []


def test_spf_big_record_over_tcp(senv):
    """A record larger than 512 octets comes truncated over UDP; greyspf's
    resolver retries over TCP and the result is pass."""
    before = len(senv.dns.queries())
    s = senv.send(senv.client(), "big@big.spf.test",
                  [f"big@{h.RCPT_DOMAIN}"], "spf big")
    assert codes(s) == [("250", "2.1.5")], s
    (copy,) = senv.pf.delivered("spf big")
    (rs,) = h.header_values(copy, "Received-SPF")
    assert rs.lower().startswith("pass"), rs
    q = [ln.lower() for ln in senv.dns.queries()[before:]]
    assert any(ln.startswith("tcp big.spf.test") for ln in q), q
