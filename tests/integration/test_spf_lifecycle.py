"""SPF evaluations in flight meet the daemon's life cycle: a client that
hangs up, SIGTERM, SIGHUP, reply_deadline, and the RFC 7208 overall time
limit over a slow DNS server."""

import signal
import subprocess
import time

from helpers import BIN
from spf_helpers import (FAIL_IP, TIMEOUT_PROBLEM, dnsfix, ini, spf_daemon,
                         spf_lines, spf_req)

assert dnsfix  # a pytest fixture, used by name

TEMPERROR = ("451 4.7.24 SPF temporary error for timeout.example.com: "
             f"{TIMEOUT_PROBLEM}, please try again later")
PASS_PREFIX = "PREPEND Received-SPF: pass "


def test_client_hangs_up_while_spf_pending(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    for _ in range(5):
        c = d.client()
        c.send(spf_req("user@timeout.example.com", client=FAIL_IP))
        c.close()
    # The evaluations finish (DNS timeout 1 s) with nobody to answer.
    time.sleep(1.5)
    assert d.running()
    c = d.client()
    assert c.request(spf_req("user@example.com")).startswith(PASS_PREFIX)
    a = spf_req("user@timeout.example.com", client=FAIL_IP)
    assert c.request(a) == TEMPERROR


def test_sigterm_answers_spf_in_flight(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    c = d.client()
    t0 = time.monotonic()
    c.send(spf_req("user@timeout.example.com", client=FAIL_IP))
    time.sleep(0.2)
    d.signal(signal.SIGTERM)
    assert c.read_reply(timeout=5) == TEMPERROR
    assert 0.8 < time.monotonic() - t0 < 4
    # Its last connection answered, the daemon exits by itself.
    assert d.proc.wait(5) == 0
    assert d.stop() == 0


def test_sighup_while_spf_pending(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    c = d.client()
    a = spf_req("user@timeout.example.com", client=FAIL_IP)
    c.send(a)
    time.sleep(0.1)
    d.rewrite(extra=d.extra.replace("[spf]\n",
                                    "[spf]\nmailfrom_temperror = prepend\n"))
    d.hup()
    # The request in flight finishes with the configuration it began with.
    assert c.read_reply(timeout=5) == TEMPERROR
    r = c.request(spf_req("user@timeout.example.com", client=FAIL_IP))
    assert r.startswith("PREPEND Received-SPF: temperror "), r


def test_reply_deadline_answers_dunno_then_in_step(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), dns_timeout="3s",
                   top={"reply_deadline": "2"}, spf={"time_limit": "1"})
    c = d.client()
    t0 = time.monotonic()
    r = c.request(spf_req("user@timeout.example.com", client=FAIL_IP))
    took = time.monotonic() - t0
    # Either the SPF time limit (temperror) or the deadline (DUNNO) ends
    # it, after about a second; the connection stays in step.
    assert r in ("DUNNO", TEMPERROR.replace(
        TIMEOUT_PROBLEM, "time limit exceeded")), r
    assert 0.8 < took < 2.5, took
    c.timeout = 8
    assert c.request(spf_req("user@example.com")).startswith(PASS_PREFIX)


def test_time_limit_over_slow_dns(daemon, dnsfix):
    """RFC 7208 section 4.6.4: an overall time limit; every lookup of a
    chain of includes takes 400 ms, the limit is 1 s."""
    zone = {
        "chain.example.com": [{"TXT": "v=spf1 include:c1.example.com -all"}],
        "c1.example.com": [{"TXT": "v=spf1 include:c2.example.com -all"}],
        "c2.example.com": [{"TXT": "v=spf1 include:c3.example.com -all"}],
        "c3.example.com": [{"TXT": "v=spf1 include:c4.example.com -all"}],
        "c4.example.com": [{"TXT": "v=spf1 +all"}],
        "mail.example.org": [{"TXT": "v=spf1 +all"}],
    }
    dns = dnsfix(zone, delay_ms=400)
    d = spf_daemon(daemon, dns, dns_timeout="3s", spf={"time_limit": "1"})
    c = d.client()
    t0 = time.monotonic()
    a = spf_req("user@chain.example.com", client=FAIL_IP)
    r = c.request(a)
    took = time.monotonic() - t0
    assert r == ("451 4.7.24 SPF temporary error for chain.example.com: "
                 "time limit exceeded, please try again later"), r
    assert 0.9 < took < 1.8, took
    assert any('problem="time limit exceeded"' in l
               for l in spf_lines(d, a["queue_id"]))


def test_time_limit_must_be_below_reply_deadline(workdir):
    """conf.c says [spf] time_limit is "below reply_deadline": otherwise
    the deadline answers DUNNO (mail accepted unchecked) before SPF can
    give its temperror. A configuration breaking that is refused."""
    conf = workdir / "c.conf"
    conf.write_text("reply_deadline = 5\n\n" + ini("spf",
                                                    {"time_limit": "20"}))
    r = subprocess.run([BIN, "config", "-c", str(conf)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0, r.stdout


def test_dns_server_down_is_temperror(daemon, dnsfix):
    """Nothing listens on the DNS port: every lookup fails, the mail is
    deferred with 4.7.24 (RFC 7208 section 4.4: temperror), and the
    answer comes within the per-query timeout, not the overall limit."""
    dns = dnsfix()
    dns.stop()
    d = spf_daemon(daemon, dns, dns_timeout="2s")
    c = d.client()
    t0 = time.monotonic()
    r = c.request(spf_req("user@example.com"))
    took = time.monotonic() - t0
    assert r.startswith("451 4.7.24 SPF temporary error for example.com: "), r
    assert took < 3, took
