"""SPF and greylisting across Postfix's protocol states and within one
message: what is checked before MAIL FROM, greylisting only at RCPT, the
per-message SPF cache, and SPF-aware keying for records that authorise
(nearly) everyone."""

import time

from helpers import retry
from spf_helpers import (BAD_HELO, FAIL_IP, GOOD_HELO, PASS_IP, ZONE, dnsfix,
                         msg, spf_daemon, spf_lines, spf_logline, spf_req)

__all__ = ["dnsfix"]  # the fixture, for pytest

DEFER1 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"


def test_before_mail_from_only_the_helo_is_checked(daemon, dnsfix):
    """At HELO (smtpd_helo_restrictions, smtpd_delay_reject = no) there is
    no MAIL FROM: an empty sender is not the null sender, so helo_fail
    decides (set to prepend here), never mailfrom_fail."""
    d = spf_daemon(daemon, dnsfix(), spf={"helo_fail": "prepend"})
    a = spf_req("", helo=BAD_HELO, protocol_state="HELO", recipient="")
    r = d.client().request(a)
    assert r.startswith("PREPEND Received-SPF: fail "), r
    assert "identity=helo;" in r
    assert spf_lines(d, a["queue_id"]) == [
        spf_logline("SPF fail - not authorized", a, "helo", "prepend")]


def test_null_sender_at_rcpt_is_postmaster_at_helo(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), spf={"helo_fail": "prepend"})
    a = spf_req("", helo=BAD_HELO)
    r = d.client().request(a)
    # MAIL FROM is postmaster@HELO: mailfrom_fail (reject) applies.
    assert r.startswith("550 5.7.23 "), r


def test_greylisting_only_at_rcpt(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), checks="greylist")
    c = d.client()
    a = spf_req("user@example.com")
    for state in ("DATA", "END-OF-MESSAGE"):
        assert c.request(dict(a, protocol_state=state)) == "DUNNO"
    assert c.request(a) == DEFER1
    assert not any("greylisting" in m and "END-OF-MESSAGE" in m
                   for m in d.msgs())
    assert sum(m.startswith("Initial greylisting") for m in d.msgs()) == 1


def test_spf_cache_follows_the_sender_within_an_instance(daemon, dnsfix):
    """Postfix keeps one instance per message; should a request of the
    same instance carry another sender, its SPF result is not reused."""
    d = spf_daemon(daemon, dnsfix())
    c = d.client()
    a = spf_req("user@example.com", client=FAIL_IP)
    assert c.request(a).startswith("550 5.7.23 ")
    b = msg(a, "other@example.org", sender="user@neutral.example.com")
    r = c.request(b)
    assert r.startswith("PREPEND Received-SPF: neutral "), r


def test_plus_all_domain_is_keyed_by_network(daemon, dnsfix):
    """A record ending in +all authorises every address: keying its
    senders by domain would let any host retry for any other."""
    zone = dict(ZONE)
    zone["open.example.com"] = [{"TXT": "v=spf1 +all"}]
    d = spf_daemon(daemon, dnsfix(zone), checks="spf, greylist")
    c = d.client()
    a = spf_req("user@open.example.com", client="192.0.2.50")
    assert c.request(a) == DEFER1
    time.sleep(1.1)
    # from another network: a new triplet, not a retry
    b = retry(a, client_address="198.51.100.50")
    assert c.request(b) == DEFER1
    # from the same network: the retry passes, with the SPF header
    r = c.request(retry(a))
    assert r.startswith("PREPEND Received-SPF: pass "), r
    assert 'mechanism="+all"' in r


def test_narrow_pass_is_keyed_by_domain(daemon, dnsfix):
    """The same flow for example.com (ip4:/32 terms): the retry from the
    pool's other address matches."""
    d = spf_daemon(daemon, dnsfix(), checks="spf, greylist")
    c = d.client()
    a = spf_req("user@example.com", client=PASS_IP)
    assert c.request(a) == DEFER1
    time.sleep(1.1)
    r = c.request(retry(a, client_address="198.51.100.20"))
    assert r.startswith("PREPEND Received-SPF: pass "), r
