"""SPF in the daemon: the real `greyspf serve` asking the real DNS fixture
(tests/fixtures/dnsserver.py) with the zone in spf_helpers.ZONE.

Covers the result -> action matrix and its replies (RFC 7372 codes and
classic ones, the domain's explanation), every action word, the headers
(exact Received-SPF and Authentication-Results values, one per reply, one
per message), HELO checks, skip_clients, test_only, the SPF whitelists,
override precedence, SPF-aware greylisting and the log wording."""

import re
import time

import pytest

from helpers import DEFER_RE, logline, retry
from spf_helpers import (BAD_HELO, FAIL_IP, GOOD_HELO, HOST, PASS_IP,
                         PASS_IP2, PASS_IP6, PERMERROR_PROBLEM,
                         TIMEOUT_PROBLEM, dnsfix, ini, msg, spf_daemon,
                         spf_lines, spf_logline, spf_req)

assert dnsfix  # a pytest fixture, used by name

DEFER1 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"

# ---- expected texts (written out, not computed by greyspf code) ---------

EXPLAINED = ("The domain example.com explains: 192.0.2.99 is not one of "
             "example.com's designated mail servers.")
NOEXP_DEFAULT = ("SPF fail: 192.0.2.99 is not allowed to send mail from "
                 "noexp.example.com")
TEMPERROR_TEXT = (f"SPF temporary error for timeout.example.com: "
                  f"{TIMEOUT_PROBLEM}, please try again later")
PERMERROR_TEXT = (f"SPF permanent error for permerror.example.com: "
                  f"{PERMERROR_PROBLEM}")
HELO_FAIL_TEXT = (f"SPF fail: the HELO name {BAD_HELO} does not authorize "
                  f"this host")
SOFTFAIL_TEXT = ("SPF softfail for softfail.example.com: domain owner "
                 "discourages use of this host")


def rspf(result, comment, ip, sender, helo=GOOD_HELO, identity="mailfrom",
         mechanism=None, problem=None):
    """A Received-SPF field as RFC 7208 section 9.1 lays it out (values
    are dot-atom or quoted-string: an IPv6 address has ':', so it is
    quoted)."""
    cip = f'"{ip}"' if ":" in ip else ip
    h = (f"Received-SPF: {result} ({HOST}: {comment}) client-ip={cip}; "
         f'envelope-from="{sender}"; helo={helo}; receiver={HOST}; '
         f"identity={identity};")
    if mechanism is not None:
        h += f' mechanism="{mechanism}";'
    if problem is not None:
        h += f' problem="{problem}";'
    return h


H_PASS = ("Received-SPF: pass (mx.example.org: domain of user@example.com "
          "designates 192.0.2.10 as permitted sender) client-ip=192.0.2.10; "
          'envelope-from="user@example.com"; helo=mail.example.org; '
          'receiver=mx.example.org; identity=mailfrom; '
          'mechanism="ip4:192.0.2.10";')
H_SOFTFAIL = rspf("softfail", "transitioning domain of "
                  "user@softfail.example.com does not designate 192.0.2.99 "
                  "as permitted sender", FAIL_IP, "user@softfail.example.com",
                  mechanism="~all")
H_NEUTRAL = rspf("neutral", "192.0.2.99 is neither permitted nor denied by "
                 "domain of user@neutral.example.com", FAIL_IP,
                 "user@neutral.example.com", mechanism="?all")
H_NONE = rspf("none", "domain of user@none.example.com does not designate "
              "permitted sender hosts", FAIL_IP, "user@none.example.com")
# The problem is cut at SPF_HEADER_VALUE_MAX (96) bytes in the header.
H_PERMERROR = rspf("permerror", "permanent error checking "
                   "domain of user@permerror.example.com", FAIL_IP,
                   "user@permerror.example.com",
                   problem=PERMERROR_PROBLEM[:93] + "...")
H_TEMPERROR = rspf("temperror", "temporary error checking domain of "
                   "user@timeout.example.com", FAIL_IP,
                   "user@timeout.example.com", problem=TIMEOUT_PROBLEM)
H_FAIL = rspf("fail", "domain of user@example.com does not designate "
              "192.0.2.99 as permitted sender", FAIL_IP, "user@example.com",
              mechanism="-all")


def prepend(h):
    return "PREPEND " + h


def is_defer(r):
    return re.match(DEFER_RE, r) is not None


# ---- the default matrix -------------------------------------------------

DEFAULT_MATRIX = [
    # (id, client, sender, action, log words, log action)
    ("pass", PASS_IP, "user@example.com", prepend(H_PASS),
     "sender SPF authorized", "prepend"),
    ("fail-exp", FAIL_IP, "user@example.com", "550 5.7.23 " + EXPLAINED,
     "SPF fail - not authorized", "reject"),
    ("fail-default", FAIL_IP, "user@noexp.example.com",
     "550 5.7.23 " + NOEXP_DEFAULT, "SPF fail - not authorized", "reject"),
    ("softfail", FAIL_IP, "user@softfail.example.com", prepend(H_SOFTFAIL),
     "domain owner discourages use of this host", "prepend"),
    ("neutral", FAIL_IP, "user@neutral.example.com", prepend(H_NEUTRAL),
     "access neither permitted nor denied", "prepend"),
    ("none", FAIL_IP, "user@none.example.com", prepend(H_NONE),
     "SPF none - no SPF record", "prepend"),
    ("permerror", FAIL_IP, "user@permerror.example.com",
     prepend(H_PERMERROR), "permanent SPF error", "prepend"),
    ("temperror", FAIL_IP, "user@timeout.example.com",
     "451 4.7.24 " + TEMPERROR_TEXT, "temporary SPF error", "defer"),
]


def test_default_actions_replies_and_log(daemon, dnsfix):
    dns = dnsfix()
    d = spf_daemon(daemon, dns)
    c = d.client()
    for name, ip, sender, want, words, act in DEFAULT_MATRIX:
        a = spf_req(sender, client=ip)
        assert c.request(a) == want, name
        problem = {"permerror": PERMERROR_PROBLEM,
                   "temperror": TIMEOUT_PROBLEM}.get(name)
        mf = spf_logline(words, a, "mailfrom", act, problem)
        helo = spf_logline("sender SPF authorized", a, "helo", "prepend")
        assert spf_lines(d, a["queue_id"]) == [helo, mf], name


def test_ipv6_client_pass(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    a = spf_req("user@example.com", client=PASS_IP6)
    assert d.client().request(a) == prepend(rspf(
        "pass", "domain of user@example.com designates 2001:db8::25 as "
        "permitted sender", PASS_IP6, "user@example.com",
        mechanism="ip6:2001:db8::25"))


def test_classic_smtp_codes(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), spf={
        "smtp_codes": "classic", "mailfrom_permerror": "reject"})
    c = d.client()
    assert c.request(spf_req("user@example.com", client=FAIL_IP)) == \
        "550 5.7.1 " + EXPLAINED
    assert c.request(spf_req("user@permerror.example.com",
                             client=FAIL_IP)) == "550 5.5.2 " + PERMERROR_TEXT
    assert c.request(spf_req("user@timeout.example.com",
                             client=FAIL_IP)) == "451 4.4.3 " + TEMPERROR_TEXT


def test_rfc7372_permerror_reject(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), spf={"mailfrom_permerror": "reject"})
    assert d.client().request(spf_req("user@permerror.example.com",
                                      client=FAIL_IP)) == \
        "550 5.7.24 " + PERMERROR_TEXT


def test_softfail_reject(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), spf={"mailfrom_softfail": "reject"})
    a = spf_req("user@softfail.example.com", client=FAIL_IP)
    assert d.client().request(a) == "550 5.7.23 " + SOFTFAIL_TEXT
    assert spf_logline("domain owner discourages use of this host", a,
                       "mailfrom", "reject") in spf_lines(d, a["queue_id"])


def test_every_action_word_by_override(daemon, dnsfix):
    """mailfrom_softfail set per sender address in override sections (HELO
    not checked: its own action must not mix in, see the next test)."""
    ov = "".join(ini(f"sender {w}@softfail.example.com",
                     {"mailfrom_softfail": w})
                 for w in ("reject", "defer", "greylist", "prepend",
                           "ignore"))
    d = spf_daemon(daemon, dnsfix(), overrides=ov,
                   spf={"helo_check": "no"})
    c = d.client()

    def one(word):
        a = spf_req(f"{word}@softfail.example.com", client=FAIL_IP)
        return a, c.request(a)

    a, r = one("reject")
    assert r == "550 5.7.23 " + SOFTFAIL_TEXT
    a, r = one("defer")
    assert r == "451 4.7.23 " + SOFTFAIL_TEXT
    a, r = one("prepend")
    assert r == prepend(H_SOFTFAIL.replace("user@", "prepend@"))
    a, r = one("ignore")
    assert r == "DUNNO"
    assert spf_logline("domain owner discourages use of this host", a,
                       "mailfrom", "ignore") in spf_lines(d, a["queue_id"])
    # greylist: greylisted although `checks` lacks greylist; the header
    # comes with the reply that lets the retry through.
    a, r = one("greylist")
    assert r == DEFER1
    assert logline("Initial greylisting", a) + "; retry in 1s, attempt 1" \
        in d.msgs()
    time.sleep(1.1)
    b = retry(a)
    assert c.request(b) == prepend(H_SOFTFAIL.replace("user@",
                                                      "greylist@"))


@pytest.mark.parametrize("mf", [("softfail", "user@softfail.example.com"),
                                ("pass", "user@example.com")])
def test_mailfrom_ignore_not_overridden_by_helo_prepend(daemon, dnsfix, mf):
    """mailfrom_<result> = ignore means no action for that MAIL FROM
    result. With the HELO checked (and passing, helo_pass = prepend by
    default) the daemon must not add a header claiming the MAIL FROM
    result: at most a header for the HELO identity (each identity's
    result maps to its own action; the header is the MAIL FROM one only
    when the MAIL FROM action asks for it)."""
    result, sender = mf
    client = PASS_IP if result == "pass" else FAIL_IP
    d = spf_daemon(daemon, dnsfix(), spf={f"mailfrom_{result}": "ignore"})
    a = spf_req(sender, client=client)
    r = d.client().request(a)
    assert r == "DUNNO" or (r.startswith("PREPEND Received-SPF: pass ") and
                            "identity=helo;" in r), r


# ---- headers -------------------------------------------------------------


def test_authentication_results_header(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(),
                   spf={"header": "authentication-results"})
    c = d.client()
    a = spf_req("user@example.com")
    assert c.request(a) == (
        "PREPEND Authentication-Results: mx.example.org; spf=pass "
        "(mx.example.org: domain of user@example.com designates 192.0.2.10 "
        "as permitted sender) smtp.mailfrom=example.com")
    assert c.request(msg(a, "second@example.org")) == "DUNNO"


def test_authentication_results_authserv_id(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), spf={
        "header": "authentication-results", "authserv_id": "auth.example.org"})
    a = spf_req("user@softfail.example.com", client=FAIL_IP)
    assert d.client().request(a) == (
        "PREPEND Authentication-Results: auth.example.org; spf=softfail "
        "(mx.example.org: transitioning domain of user@softfail.example.com "
        "does not designate 192.0.2.99 as permitted sender) "
        "smtp.mailfrom=softfail.example.com")


def test_both_headers_one_per_reply(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), spf={"header": "both"})
    c = d.client()
    a = spf_req("user@example.com")
    assert c.request(a) == prepend(H_PASS)
    assert c.request(msg(a, "r2@example.org")) == (
        "PREPEND Authentication-Results: mx.example.org; spf=pass "
        "(mx.example.org: domain of user@example.com designates 192.0.2.10 "
        "as permitted sender) smtp.mailfrom=example.com")
    assert c.request(msg(a, "r3@example.org")) == "DUNNO"
    # A new message (new instance) gets its own headers.
    b = retry(a)
    assert c.request(b) == prepend(H_PASS)


def test_header_none(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), spf={"header": "none"})
    assert d.client().request(spf_req("user@example.com")) == "DUNNO"


def test_one_received_spf_per_message(daemon, dnsfix):
    dns = dnsfix()
    d = spf_daemon(daemon, dns)
    c = d.client()
    a = spf_req("user@example.com")
    assert c.request(a) == prepend(H_PASS)
    for i in range(4):
        assert c.request(msg(a, f"other{i}@example.org")) == "DUNNO"
    # Evaluated and logged once for the message.
    assert len(spf_lines(d, a["queue_id"])) == 2
    assert len([q for q in dns.asked("example.com") if "TXT" in q]) == 1
    # DATA / END-OF-MESSAGE of the same message: nothing more.
    assert c.request(msg(a, "", protocol_state="DATA")) == "DUNNO"
    assert c.request(msg(a, "", protocol_state="END-OF-MESSAGE")) == "DUNNO"


def test_one_header_per_message_across_connections_is_per_instance(
        daemon, dnsfix):
    """Postfix sends a message's requests over one connection; a second
    connection's state is its own."""
    d = spf_daemon(daemon, dnsfix())
    a = spf_req("user@example.com")
    assert d.client().request(a) == prepend(H_PASS)
    assert d.client().request(msg(a, "x@example.org")) == prepend(
        H_PASS)


def test_fail_reject_reply_for_every_recipient(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    c = d.client()
    a = spf_req("user@example.com", client=FAIL_IP)
    assert c.request(a) == "550 5.7.23 " + EXPLAINED
    assert c.request(msg(a, "again@example.org")) == "550 5.7.23 " + EXPLAINED


# ---- HELO ----------------------------------------------------------------


def test_helo_fail_rejects_by_default(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    a = spf_req("user@example.com", helo=BAD_HELO)
    assert d.client().request(a) == "550 5.7.23 " + HELO_FAIL_TEXT
    assert spf_lines(d, a["queue_id"]) == [
        spf_logline("SPF fail - not authorized", a, "helo", "reject"),
        spf_logline("sender SPF authorized", a, "mailfrom", "prepend"),
    ]


def test_helo_check_off(daemon, dnsfix):
    dns = dnsfix()
    d = spf_daemon(daemon, dns, spf={"helo_check": "no"})
    a = spf_req("user@example.com", helo=BAD_HELO)
    assert d.client().request(a) == prepend(H_PASS.replace(
        "helo=mail.example.org", f"helo={BAD_HELO}"))
    assert dns.asked(BAD_HELO) == []
    assert [l for l in spf_lines(d, a["queue_id"])
            if "identity=helo" in l] == []


def test_null_sender_uses_postmaster_at_helo(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    c = d.client()
    a = spf_req("")
    assert c.request(a) == prepend(rspf(
        "pass", "domain of postmaster@mail.example.org designates "
        "192.0.2.10 as permitted sender", PASS_IP, "",
        mechanism="ip4:192.0.2.0/24"))
    b = spf_req("", helo=BAD_HELO)
    r = c.request(b)
    assert r.startswith("550 5.7.23 "), r
    assert BAD_HELO in r
    lines = spf_lines(d, b["queue_id"])
    assert any("SPF fail - not authorized" in l and "identity=mailfrom" in l
               for l in lines), lines


@pytest.mark.parametrize("helo", ["[192.0.2.10]", "192.0.2.10",
                                  "[IPv6:2001:db8::25]", "localhost"])
def test_ip_literal_helo_not_checked(daemon, dnsfix, helo):
    dns = dnsfix()
    d = spf_daemon(daemon, dns)
    a = spf_req("user@example.com", helo=helo)
    r = d.client().request(a)
    assert r.startswith("PREPEND Received-SPF: pass "), r
    lines = spf_lines(d, a["queue_id"])
    assert [l for l in lines if "identity=helo" in l] == []
    assert len(lines) == 1
    assert [q for q in dns.queries() if "example.com." not in q] == []


# ---- skip_clients and test_only -------------------------------------------


def test_skip_clients(daemon, dnsfix):
    dns = dnsfix()
    d = spf_daemon(daemon, dns, spf={
        "skip_clients": "192.0.2.128/25, 2001:db8:ffff::/48"})
    c = d.client()
    for ip in ("192.0.2.200", "2001:db8:ffff::1"):
        a = spf_req("user@example.com", client=ip)
        assert c.request(a) == "DUNNO", ip
        assert spf_lines(d, a["queue_id"]) == []
        assert logline("SPF skipped", a) + "; client in skip_clients" in \
            d.msgs()
    assert dns.queries() == []
    # Outside the list: checked (loopback is no longer skipped either).
    a = spf_req("user@example.com", client=FAIL_IP)
    assert c.request(a).startswith("550 5.7.23 ")
    a = spf_req("user@example.com", client="127.0.0.1")
    assert c.request(a).startswith("550 5.7.23 ")


def test_skip_clients_default_is_loopback(daemon, dnsfix):
    dns = dnsfix()
    d = spf_daemon(daemon, dns)
    c = d.client()
    for ip in ("127.0.0.1", "127.9.9.9", "::1"):
        a = spf_req("user@example.com", client=ip)
        assert c.request(a) == "DUNNO", ip
        assert spf_lines(d, a["queue_id"]) == []
    assert dns.queries() == []
    a = spf_req("user@example.com", client=FAIL_IP)
    assert c.request(a).startswith("550 5.7.23 ")


def test_test_only(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), spf={"test_only": "yes"})
    c = d.client()
    a = spf_req("user@example.com", client=FAIL_IP)
    assert c.request(a) == "DUNNO"
    assert spf_logline("SPF fail - not authorized", a, "mailfrom",
                       "none (test_only)") in spf_lines(d, a["queue_id"])
    b = spf_req("user@example.com")
    assert c.request(b) == "DUNNO"
    assert spf_logline("sender SPF authorized", b, "mailfrom",
                       "none (test_only)") in spf_lines(d, b["queue_id"])
    t = spf_req("user@timeout.example.com", client=FAIL_IP)
    assert c.request(t) == "DUNNO"


# ---- whitelists -----------------------------------------------------------


def test_whitelist_senders_only_on_pass(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), checks="spf, greylist",
                   spf={"whitelist_senders": "example.com",
                        "mailfrom_fail": "prepend"})
    c = d.client()
    a = spf_req("user@example.com")
    assert c.request(a) == prepend(H_PASS)
    assert logline("Not greylisted", a) + \
        "; SPF pass for a whitelisted sender domain" in d.msgs()
    # Forged: same domain from an address it does not authorise.
    f = spf_req("user@example.com", client=FAIL_IP)
    assert c.request(f) == DEFER1
    assert logline("Initial greylisting", f) + "; retry in 1s, attempt 1" \
        in d.msgs()
    # A subdomain is covered, but again only when it passes.
    s = spf_req("user@softfail.example.com")
    assert c.request(s).startswith("PREPEND Received-SPF: pass ")
    s2 = spf_req("user@softfail.example.com", client=FAIL_IP)
    assert c.request(s2) == DEFER1
    # Another domain passing is greylisted.
    o = spf_req("", helo=GOOD_HELO)
    assert c.request(o) == DEFER1


def test_whitelist_senders_forged_rejected_by_default(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), checks="spf, greylist",
                   spf={"whitelist_senders": "example.com"})
    f = spf_req("user@example.com", client=FAIL_IP)
    assert d.client().request(f) == "550 5.7.23 " + EXPLAINED


def test_whitelist_helo_only_on_pass(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix(), checks="spf, greylist",
                   spf={"whitelist_helo": "mail.example.org, "
                                          "helo2.example.org",
                        "helo_fail": "prepend"})
    c = d.client()
    a = spf_req("user@none.example.com", client="192.0.2.50")
    r = c.request(a)
    assert r.startswith("PREPEND Received-SPF: none "), r
    assert logline("Not greylisted", a) + \
        "; SPF pass for a whitelisted HELO name" in d.msgs()
    # helo2 authorises only 192.0.2.10: from elsewhere it is greylisted.
    b = spf_req("user@none.example.com", client="192.0.2.50",
                helo="helo2.example.org")
    assert c.request(b) == DEFER1
    b2 = spf_req("user@none.example.com", client=PASS_IP,
                 helo="helo2.example.org")
    assert c.request(b2).startswith("PREPEND Received-SPF: none ")
    # A HELO name not listed: greylisted.
    e = spf_req("user@none.example.com", client="192.0.2.51",
                helo="mx.example.net")
    assert c.request(e) == DEFER1


# ---- override precedence ---------------------------------------------------


def test_override_precedence(daemon, dnsfix):
    ov = (ini("client 192.0.2.0/24", {"mailfrom_softfail": "reject"}) +
          ini("client 192.0.2.96/28", {"mailfrom_softfail": "prepend"}) +
          ini("sender example.net", {"mailfrom_softfail": "greylist"}) +
          ini("sender softfail.example.net", {"mailfrom_softfail": "defer"}) +
          ini("sender boss@softfail.example.net",
              {"mailfrom_softfail": "prepend"}) +
          ini("recipient example.org", {"mailfrom_softfail": "ignore"}) +
          ini("recipient postmaster@", {"mailfrom_softfail": "reject"}) +
          ini("recipient abuse@example.org",
              {"mailfrom_softfail": "defer"}))
    # HELO not checked: precedence of the MAIL FROM action alone.
    d = spf_daemon(daemon, dnsfix(), overrides=ov, spf={"helo_check": "no"})
    c = d.client()
    snd = "user@softfail.example.com"  # no sender section matches

    def act(client, sender, rcpt):
        r = c.request(spf_req(sender, client=client, recipient=rcpt))
        if r.startswith("550 "):
            return "reject"
        if r.startswith("451 "):
            return "defer"
        if is_defer(r):
            return "greylist"
        if r.startswith("PREPEND "):
            return "prepend"
        assert r == "DUNNO", r
        return "ignore"

    # client sections: the longer prefix wins; outside both: default.
    assert act("192.0.2.120", snd, "a@example.net") == "reject"
    assert act("192.0.2.99", snd, "a@example.net") == "prepend"
    assert act("198.51.100.7", snd, "a@example.net") == "prepend"
    # sender over client; exact address > domain > parent domain.
    s = "user@softfail.example.net"
    assert act("192.0.2.120", s, "a@example.net") == "defer"
    assert act("192.0.2.120", "boss@softfail.example.net",
               "a@example.net") == "prepend"
    # recipient over sender over client; exact > local part > domain.
    assert act("192.0.2.120", s, "a@example.org") == "ignore"
    assert act("192.0.2.120", s, "postmaster@example.org") == "reject"
    assert act("192.0.2.120", "boss@softfail.example.net",
               "abuse@example.org") == "defer"
    assert act("198.51.100.7", snd, "postmaster@example.net") == "reject"


def test_override_parent_domain_sender(daemon, dnsfix):
    ov = ini("sender example.net", {"mailfrom_softfail": "defer"})
    d = spf_daemon(daemon, dnsfix(), overrides=ov)
    r = d.client().request(spf_req("x@softfail.example.net", client=FAIL_IP))
    assert r.startswith("451 4.7.23 SPF softfail for softfail.example.net"), r


def test_override_checks_and_header(daemon, dnsfix):
    """checks and spf.header in override sections."""
    ov = (ini("client 198.51.100.0/24", {"checks": "greylist"}) +
          ini("sender neutral.example.com", {"spf.header": "none"}))
    dns = dnsfix()
    d = spf_daemon(daemon, dns, overrides=ov)
    c = d.client()
    a = spf_req("user@example.com", client="198.51.100.5")
    assert c.request(a) == DEFER1
    assert spf_lines(d, a["queue_id"]) == []
    assert dns.queries() == []
    assert c.request(spf_req("u@neutral.example.com", client=FAIL_IP)) == \
        "DUNNO"


# ---- SPF-aware greylisting ------------------------------------------------


def greylist_daemon(daemon, dnsfix, **greylist):
    return spf_daemon(daemon, dnsfix(), checks="spf, greylist",
                      greylist=greylist)


def test_spf_pass_key_by_domain_default(daemon, dnsfix):
    d = greylist_daemon(daemon, dnsfix)
    c = d.client()
    a1 = spf_req("user@example.com", client=PASS_IP,
                 recipient="r1@example.org")
    a2 = spf_req("user@example.com", client=PASS_IP,
                 recipient="r2@example.org")
    # Not SPF-pass: keyed by network as usual.
    s = spf_req("user@softfail.example.com", client=PASS_IP.replace(
        "10", "11"), recipient="r3@example.org")
    for a in (a1, a2, s):
        assert c.request(a) == DEFER1
    time.sleep(1.1)
    b1 = retry(a1, client_address=PASS_IP2)
    assert c.request(b1) == prepend(rspf(
        "pass", "domain of user@example.com designates 198.51.100.20 as "
        "permitted sender", PASS_IP2, "user@example.com",
        mechanism="ip4:198.51.100.20"))
    b2 = retry(a2, client_address=PASS_IP6)
    assert c.request(b2).startswith(
        "PREPEND Received-SPF: pass (mx.example.org: domain of "
        "user@example.com designates 2001:db8::25 as permitted sender)")
    assert any(m.startswith(logline("Allowed greylisting", b1)) for m in
               d.msgs())
    s2 = retry(s, client_address="198.51.100.11")
    assert c.request(s2) == DEFER1


def test_spf_pass_normal(daemon, dnsfix):
    d = greylist_daemon(daemon, dnsfix, spf_pass="normal")
    c = d.client()
    a = spf_req("user@example.com", client=PASS_IP)
    assert c.request(a) == DEFER1
    time.sleep(1.1)
    assert c.request(retry(a, client_address=PASS_IP2)) == DEFER1
    assert c.request(retry(a, client_address=PASS_IP6)) == DEFER1
    assert c.request(retry(a)) == prepend(H_PASS)


@pytest.mark.parametrize("opt", [{"spf_pass": "skip"},
                                 {"only_if": "spf-not-pass"}])
def test_spf_pass_not_greylisted(daemon, dnsfix, opt):
    d = greylist_daemon(daemon, dnsfix, **opt)
    c = d.client()
    a = spf_req("user@example.com")
    assert c.request(a) == prepend(H_PASS)
    assert logline("Not greylisted", a) + "; SPF pass" in d.msgs()
    for sender, ip in (("user@softfail.example.com", FAIL_IP),
                       ("user@none.example.com", FAIL_IP),
                       ("user@neutral.example.com", FAIL_IP)):
        assert c.request(spf_req(sender, client=ip)) == DEFER1, sender


def test_greylist_defer_keeps_header_for_the_retry(daemon, dnsfix):
    d = greylist_daemon(daemon, dnsfix)
    c = d.client()
    a = spf_req("user@neutral.example.com", client=FAIL_IP)
    assert c.request(a) == DEFER1
    time.sleep(1.1)
    b = retry(a)
    assert c.request(b) == prepend(H_NEUTRAL)
    # greylist header and SPF header: one per reply.
    assert c.request(msg(b, "zz@example.org")) == DEFER1


# ---- log wording ----------------------------------------------------------


def test_log_wording_tumgreyspf(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    c = d.client()
    a = spf_req("user@example.com", queue_id="4XyZ1abc", client=PASS_IP)
    c.request(a)
    assert (f'sender SPF authorized: QUEUE_ID="4XyZ1abc"; '
            f'identity=mailfrom; client-ip=192.0.2.10; '
            f'helo=mail.example.org; envelope-from=user@example.com; '
            f'receiver={a["recipient"]}; action=prepend;') in d.msgs()
    t = spf_req("user@timeout.example.com", client=FAIL_IP)
    c.request(t)
    assert (f'temporary SPF error: QUEUE_ID="{t["queue_id"]}"; '
            f'identity=mailfrom; client-ip=192.0.2.99; '
            f'helo=mail.example.org; envelope-from=user@timeout.example.com;'
            f' receiver={t["recipient"]}; problem="{TIMEOUT_PROBLEM}"; '
            f'action=defer;') in d.msgs()


# ---- more HELO cases, headers with greylisting, hostile data ----------------


def test_helo_temperror_defers(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    a = spf_req("user@example.com", helo="timeout.example.com")
    assert d.client().request(a) == "451 4.7.24 " + TEMPERROR_TEXT
    assert spf_lines(d, a["queue_id"]) == [
        spf_logline("temporary SPF error", a, "helo", "defer",
                    TIMEOUT_PROBLEM),
        spf_logline("sender SPF authorized", a, "mailfrom", "prepend"),
    ]


def test_null_sender_helo_fail_reply(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    a = spf_req("", helo=BAD_HELO)
    assert d.client().request(a) == (
        "550 5.7.23 SPF fail: 192.0.2.10 is not allowed to send mail from "
        "badhelo.example.org")


def test_null_sender_ip_literal_helo(daemon, dnsfix):
    """postmaster@[192.0.2.10] has no domain to check: none (RFC 7208
    section 4.3), and nothing is asked of DNS."""
    dns = dnsfix()
    d = spf_daemon(daemon, dns)
    a = spf_req("", helo="[192.0.2.10]")
    assert d.client().request(a) == prepend(rspf(
        "none", "domain of postmaster@[192.0.2.10] does not designate "
        "permitted sender hosts", PASS_IP, "", helo='"[192.0.2.10]"'))
    assert dns.queries() == []


def test_all_headers_one_per_request_then_data(daemon, dnsfix):
    """Received-SPF, Authentication-Results and X-Greylist of one message
    leave one per reply: RCPT, RCPT, then DATA."""
    d = spf_daemon(daemon, dnsfix(), checks="spf, greylist",
                   spf={"header": "both"}, greylist={"header": "yes"})
    c = d.client()
    a = spf_req("user@neutral.example.com", client=FAIL_IP)
    assert c.request(a) == DEFER1
    time.sleep(1.1)
    b = retry(a)
    assert c.request(b) == prepend(H_NEUTRAL)
    r2 = c.request(msg(b, b["recipient"]))  # same recipient again
    assert r2.startswith("PREPEND Authentication-Results: mx.example.org; "
                         "spf=neutral "), r2
    r3 = c.request(msg(b, "", protocol_state="DATA"))
    assert re.match(r"^PREPEND X-Greylist: delayed [12] seconds by greyspf-",
                    r3), r3
    assert c.request(msg(b, "", protocol_state="END-OF-MESSAGE")) == "DUNNO"


def test_header_quoting_of_hostile_sender(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    a = spf_req('we(ir)d"\\x@example.com')
    r = d.client().request(a)
    assert r == prepend(
        "Received-SPF: pass (mx.example.org: domain of "
        'we\\(ir\\)d"\\\\x@example.com designates 192.0.2.10 as permitted '
        "sender) client-ip=192.0.2.10; "
        'envelope-from="we(ir)d\\"\\\\x@example.com"; helo=mail.example.org; '
        'receiver=mx.example.org; identity=mailfrom; '
        'mechanism="ip4:192.0.2.10";'), r


def test_long_explanation_fits_a_reply(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    r = d.client().request(spf_req("user@longexp.example.com",
                                   client=FAIL_IP))
    assert r.startswith("550 5.7.23 The domain longexp.example.com "
                        "explains: xxxx"), r
    # Postfix: an SMTP reply line is at most 512 octets with CR LF.
    assert len(r) <= 510, len(r)


def test_control_characters_in_explanation(daemon, dnsfix):
    """The reply stays one line (the client checks the framing: exactly
    one action= line, then an empty line). The text is the domain's,
    made printable, or the default explanation."""
    d = spf_daemon(daemon, dnsfix())
    c = d.client()
    r = c.request(spf_req("user@ctlexp.example.com", client=FAIL_IP))
    assert r.startswith("550 5.7.23 The domain ctlexp.example.com explains: "
                        "bad") or r == ("550 5.7.23 SPF fail: 192.0.2.99 is "
                                        "not allowed to send mail from "
                                        "ctlexp.example.com"), r
    assert all(0x20 <= ord(ch) < 0x7f for ch in r), r
    # The connection is still in step.
    assert c.request(spf_req("user@example.com")) == prepend(H_PASS)


# ---- other protocol states, spawn mode, forced greylisting ------------------


def test_mail_stage_request_carries_the_header(daemon, dnsfix):
    """Policy consulted in smtpd_sender_restrictions (no recipient yet):
    SPF runs and its header goes out there, once for the message."""
    d = spf_daemon(daemon, dnsfix(), checks="spf, greylist")
    c = d.client()
    a = spf_req("user@example.com", recipient="", protocol_state="MAIL")
    assert c.request(a) == prepend(H_PASS)
    r = c.request(msg(a, "rcpt@example.org", protocol_state="RCPT"))
    assert r == DEFER1


def test_end_of_message_no_prepend_but_reject(daemon, dnsfix):
    d = spf_daemon(daemon, dnsfix())
    c = d.client()
    a = spf_req("user@example.com", recipient="",
                protocol_state="END-OF-MESSAGE")
    assert c.request(a) == "DUNNO"
    f = spf_req("user@example.com", client=FAIL_IP, recipient="",
                protocol_state="END-OF-MESSAGE")
    assert c.request(f) == "550 5.7.23 " + EXPLAINED


def test_action_greylist_beats_whitelist_senders(daemon, dnsfix):
    """README: `greylist` greylists even where whitelisted."""
    d = spf_daemon(daemon, dnsfix(), checks="spf, greylist",
                   spf={"whitelist_senders": "example.com",
                        "mailfrom_pass": "greylist"})
    assert d.client().request(spf_req("user@example.com")) == DEFER1


def test_spawn_mode_checks_spf(daemon, dnsfix, spawn):
    d = spf_daemon(daemon, dnsfix(), start=False)
    p = spawn(d.conf)
    assert p.request(spf_req("user@example.com")) == prepend(H_PASS)
    assert p.request(spf_req("user@example.com", client=FAIL_IP)) == \
        "550 5.7.23 " + EXPLAINED


def test_key_by_domain_ignores_case(daemon, dnsfix):
    """Domain names are case-insensitive (RFC 4343): a retry that spells
    the sender's domain in other case, from another authorised address,
    is the same greylisting key."""
    d = spf_daemon(daemon, dnsfix(), checks="spf, greylist")
    c = d.client()
    a = spf_req("user@example.com", client=PASS_IP)
    assert c.request(a) == DEFER1
    time.sleep(1.1)
    b = retry(a, sender="user@EXAMPLE.Com", client_address=PASS_IP2)
    r = c.request(b)
    assert r.startswith("PREPEND Received-SPF: pass "), r


def test_ipv4_mapped_client(daemon, dnsfix):
    """An IPv4-mapped IPv6 client is its IPv4 address: checked against
    ip4 terms, and loopback in skip_clients."""
    dns = dnsfix()
    d = spf_daemon(daemon, dns)
    c = d.client()
    a = spf_req("user@example.com", client="::ffff:127.0.0.1")
    assert c.request(a) == "DUNNO"
    assert dns.queries() == []
    b = spf_req("user@example.com", client="::ffff:192.0.2.10")
    assert c.request(b) == prepend(H_PASS)


# ---- the daemon's resolver --------------------------------------------------


def test_resolver_cache_shared_by_messages(daemon, dnsfix):
    dns = dnsfix()
    d = spf_daemon(daemon, dns)
    c = d.client()
    for ip in (PASS_IP, FAIL_IP, PASS_IP2, PASS_IP):
        c.request(spf_req("user@example.com", client=ip))
    assert len([q for q in dns.asked("example.com") if q.endswith(" TXT")]) \
        == 1
    assert len([q for q in dns.asked("explain.example.com")
                if q.endswith(" TXT")]) == 1


def test_large_record_over_tcp_in_the_daemon(daemon, dnsfix):
    """A ~1400-byte record (several strings of one TXT RR): truncated over
    UDP (above libunbound's EDNS size), fetched again over TCP."""
    text = ("v=spf1 " + " ".join(f"ip4:198.51.100.{i}" for i in range(1, 80))
            + " ip4:192.0.2.10 -all")
    zone = {"big.example.net": [{"TXT": [text[i:i + 200] for i in
                                         range(0, len(text), 200)]}]}
    dns = dnsfix(zone)
    d = spf_daemon(daemon, dns, spf={"helo_check": "no"})
    a = spf_req("user@big.example.net")
    r = d.client().request(a)
    assert r.startswith("PREPEND Received-SPF: pass "), r
    assert 'mechanism="ip4:192.0.2.10"' in r
    assert [q.split()[0] for q in dns.asked("big.example.net")] == \
        ["udp", "tcp"]
