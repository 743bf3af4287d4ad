"""Greylisting semantics through the daemon: client networks, sender and
recipient normalisation, auto-whitelist, learning mode, per-message
overrides, whitelist files and the store's whitelist table."""

import json
import re
import time

from helpers import DEFER_RE, logline, req, retry, unique

DEFER1 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"


def is_defer(r):
    return re.match(DEFER_RE, r) is not None


def first_then_retry(d, pairs, wait=1.1):
    """pairs: [(first_request, retry_request)]. Sends every first attempt
    (each must be deferred as Initial), waits past the delay once, then
    sends every retry; returns the retry replies."""
    c = d.client()
    for a, _ in pairs:
        assert c.request(a) == DEFER1, a
    time.sleep(wait)
    return [c.request(b) for _, b in pairs]


def initial_logged(d, a):
    return any(m.startswith(logline("Initial greylisting", a) + ";")
               for m in d.msgs())


def test_client_networks_default_prefixes(daemon):
    d = daemon()
    same24 = req(client="192.0.2.10")
    other24 = req(client="192.0.2.11")
    v6same = req(client="2001:db8:1::1")
    v6other = req(client="2001:db8:1::3")
    pairs = [
        (same24, retry(same24, client_address="192.0.2.200")),
        (other24, retry(other24, client_address="198.51.100.11")),
        (v6same, retry(v6same, client_address="2001:db8:1::2")),
        (v6other, retry(v6other, client_address="2001:db8:2::1")),
    ]
    got = first_then_retry(d, pairs)
    assert got[0] == "DUNNO"
    assert got[1] == DEFER1 and initial_logged(d, pairs[1][1])
    assert got[2] == "DUNNO"
    assert got[3] == DEFER1 and initial_logged(d, pairs[3][1])
    # The keys are the networks.
    nets = {json.loads(l)["net"] for l in d.db("dump").stdout.splitlines()
            if json.loads(l)["table"] == "triplets"}
    assert nets == {"192.0.2.0/24", "198.51.100.0/24", "2001:db8:1::/64",
                    "2001:db8:2::/64"}


def test_client_network_prefix_options(daemon):
    d = daemon(greylist={"ipv4_prefix": "32", "ipv6_prefix": "48"})
    v4 = req(client="192.0.2.10")
    v4same = req(client="192.0.2.12")
    v6 = req(client="2001:db8:1::1")
    v6far = req(client="2001:db8:1::9")
    pairs = [
        (v4, retry(v4, client_address="192.0.2.11")),       # other /32
        (v4same, retry(v4same, client_address="192.0.2.12")),
        (v6, retry(v6, client_address="2001:db8:1:ff::1")),  # same /48
        (v6far, retry(v6far, client_address="2001:db8:2::1")),
    ]
    got = first_then_retry(d, pairs)
    assert got == [DEFER1, "DUNNO", "DUNNO", DEFER1], got
    assert initial_logged(d, pairs[0][1])
    assert initial_logged(d, pairs[3][1])


def test_sender_normalisation(daemon):
    d = daemon()
    cases = [
        ("user+ext1@example.net", "user+other-ext@example.net"),
        ("prvs=0123abcdef=bob@example.net", "prvs=1456fedcba=bob@example.net"),
        ("bob=prvs=0123abcdef@example.com", "bob=prvs=1999aaaaaa@example.com"),
        ("SRS0=HhH1=TT=example.com=alice@forwarder.example.org",
         "SRS0=k2Xx=AB=example.com=alice@forwarder.example.org"),
        ("bounce-123-4567@lists.example.net",
         "bounce-98-7654321@lists.example.net"),
        ("Carol@Example.NET", "carol@example.net"),
    ]
    pairs = []
    for i, (s1, s2) in enumerate(cases):
        a = req(client="192.0.2.40", sender=s1,
                recipient=f"n{i}{unique('r')}@example.org")
        pairs.append((a, retry(a, sender=s2)))
    # Controls: a really different sender is a new triplet.
    a = req(client="192.0.2.40", sender="user@example.net",
            recipient=f"{unique('r')}@example.org")
    pairs.append((a, retry(a, sender="someone-else@example.net")))
    got = first_then_retry(d, pairs)
    assert got[:-1] == ["DUNNO"] * len(cases), list(zip(cases, got))
    assert got[-1] == DEFER1
    senders = {json.loads(l).get("sender")
               for l in d.db("dump").stdout.splitlines()}
    for s in ("user@example.net", "bob@example.net", "bob@example.com",
              "alice@example.com", "bounce-#-#@lists.example.net",
              "carol@example.net", "someone-else@example.net"):
        assert s in senders, senders


def test_recipient_extension_and_case(daemon):
    d = daemon()
    a = req(client="192.0.2.41", recipient="Dave+list@Example.ORG")
    b = req(client="192.0.2.41", recipient="erin@example.org")
    got = first_then_retry(d, [
        (a, retry(a, recipient="dave+other@example.org")),
        (b, retry(b, recipient="erin.x@example.org")),
    ])
    assert got == ["DUNNO", DEFER1]


def test_recipient_delimiter_option(daemon):
    d = daemon(greylist={"recipient_delimiter": "-"})
    a = req(client="192.0.2.42", recipient="frank-news@example.org")
    b = req(client="192.0.2.42", recipient="gina+news@example.org")
    got = first_then_retry(d, [
        (a, retry(a, recipient="frank-other@example.org")),
        (b, retry(b, recipient="gina+other@example.org")),  # '+' is not one
    ])
    assert got == ["DUNNO", DEFER1]


def test_null_sender(daemon):
    d = daemon()
    a = req(client="192.0.2.43", sender="")
    got = first_then_retry(d, [(a, retry(a))])
    assert got == ["DUNNO"]
    assert initial_logged(d, a)


def test_auto_whitelist_one_pass(daemon):
    d = daemon(greylist={"auto_whitelist": "1"})
    a = req(client="192.0.2.60")
    e = retry(a, client_address="192.0.2.61")
    assert first_then_retry(d, [(a, e)]) == ["DUNNO"]
    assert "client network 192.0.2.0/24 auto-whitelisted after 1 passes" \
        in d.msgs()
    n = req(client="192.0.2.99")  # new sender, recipient, address
    assert d.client().request(n) == "DUNNO"
    assert logline("Auto-whitelisted", n) + \
        "; client network 192.0.2.0/24, 1 passes" in d.msgs()
    # Another network is still greylisted.
    assert d.client().request(req(client="198.51.100.60")) == DEFER1


def test_auto_whitelist_two_passes(daemon):
    d = daemon(greylist={"auto_whitelist": "2"})
    a = req(client="192.0.2.62")
    b = req(client="192.0.2.63")
    # Two passes in the same hour count once (postgrey's rule) ...
    assert first_then_retry(d, [(a, retry(a)), (b, retry(b))]) == \
        ["DUNNO", "DUNNO"]
    n = req(client="192.0.2.64")
    assert d.client().request(n) == DEFER1
    assert not any("auto-whitelisted after" in m for m in d.msgs())
    # ... so make the counted pass two hours old, as if the client had
    # passed then; its next first pass is the second counted one.
    rec = [json.loads(l) for l in d.db("dump").stdout.splitlines()]
    cl = [r for r in rec if r["table"] == "clients"]
    assert len(cl) == 1 and cl[0]["key"] == "192.0.2.0/24" and \
        cl[0]["passed"] == 1 and cl[0]["count"] == 2, cl
    cl[0]["last_seen"] -= 7200
    cl[0]["first_seen"] -= 7200
    d.db("load", input=json.dumps(cl[0]) + "\n")
    time.sleep(1.1)
    assert d.client().request(retry(n)) == "DUNNO"
    assert "client network 192.0.2.0/24 auto-whitelisted after 2 passes" \
        in d.msgs()
    m = req(client="192.0.2.65")
    assert d.client().request(m) == "DUNNO"
    assert logline("Auto-whitelisted", m) + \
        "; client network 192.0.2.0/24, 2 passes" in d.msgs()


def test_learning_mode(daemon):
    d = daemon(greylist={"learning": "yes"})
    a = req(client="192.0.2.70")
    c = d.client()
    assert c.request(a) == "DUNNO"
    assert logline("Training greylisting", a) + \
        "; would defer, attempt 1" in d.msgs()
    time.sleep(1.1)
    b = retry(a)
    assert c.request(b) == "DUNNO"
    assert logline("Training greylisting", b) + \
        "; would pass, attempt 2" in d.msgs()
    assert not d.log_lines("Initial greylisting")


def test_whitelist_files(daemon, workdir):
    cl = workdir / "clients.txt"
    cl.write_text("# clients\n"
                  "192.0.2.50\n"
                  "198.51.100.128/25\n"
                  "trusted.example.com\n"
                  "/^mx\\d+\\.relay\\.example$/\n"
                  "2001:db8:77::/48\n")
    rc = workdir / "recipients.txt"
    rc.write_text("postmaster@\n"
                  "@wl.example.org\n"
                  "partner.example\n"
                  "boss@example.org\n")
    d = daemon(greylist={"whitelist_clients": str(cl),
                         "whitelist_recipients": str(rc)})
    c = d.client()
    yes = [
        (req(client="192.0.2.50"), 'net "192.0.2.50"', cl, 2),
        (req(client="198.51.100.200"), 'net "198.51.100.128/25"', cl, 3),
        (req(client="192.0.2.60", client_name="smtp.trusted.example.com"),
         'name "trusted.example.com"', cl, 4),
        (req(client="192.0.2.61", client_name="trusted.example.com"),
         'name "trusted.example.com"', cl, 4),
        (req(client="192.0.2.62", client_name="mx12.relay.example"),
         'regex "/^mx\\d+\\.relay\\.example$/"', cl, 5),
        (req(client="2001:db8:77:1::5"), 'net "2001:db8:77::/48"', cl, 6),
        (req(client="192.0.2.63", recipient="postmaster@example.org"),
         'local "postmaster@"', rc, 1),
        (req(client="192.0.2.63", recipient="PostMaster+x@example.com"),
         'local "postmaster@"', rc, 1),
        (req(client="192.0.2.63", recipient="x@wl.example.org"),
         '@domain "@wl.example.org"', rc, 2),
        (req(client="192.0.2.63", recipient="x@mx.partner.example"),
         'domain "partner.example"', rc, 3),
        (req(client="192.0.2.63", recipient="boss+y@example.org"),
         'address "boss@example.org"', rc, 4),
    ]
    no = [
        req(client="192.0.2.51"),
        req(client="198.51.100.5"),
        req(client="192.0.2.64", client_name="untrusted.example.com"),
        req(client="192.0.2.64", client_name="mx12.relay.example.net"),
        req(client="192.0.2.64", client_name="unknown",
            reverse_client_name="smtp.trusted.example.com"),
        req(client="2001:db8:78::5"),
        req(client="192.0.2.65", recipient="x@sub.wl.example.org"),
        req(client="192.0.2.65", recipient="x@notpartner.example"),
        req(client="192.0.2.65", recipient="boss2@example.org"),
    ]
    for a, what, f, line in yes:
        assert c.request(a) == "DUNNO", a
        assert logline("Whitelisted", a) + f"; {what} ({f}:{line})" in \
            d.msgs(), (what, d.msgs()[-1])
    for a in no:
        assert c.request(a) == DEFER1, a
        assert initial_logged(d, a)


def test_store_whitelist_with_sighup(daemon):
    d = daemon()
    c = d.client()
    a = req(client="192.0.2.77")
    assert c.request(a) == DEFER1
    r = d.db("whitelist", "add", "192.0.2.0/24")
    assert r.stdout == "added 192.0.2.0/24\n"
    assert [l.split()[0] for l in
            d.db("whitelist", "list").stdout.splitlines()] == \
        ["192.0.2.0/24"]
    d.hup()
    b = req(client="192.0.2.78")
    assert c.request(b) == "DUNNO"
    assert logline("Whitelisted", b) + \
        "; client in the store's whitelist" in d.msgs()
    assert c.request(req(client="198.51.100.78")) == DEFER1
    d.db("whitelist", "remove", "192.0.2.0/24")
    assert d.db("whitelist", "list").stdout.strip() == ""
    d.hup()
    assert c.request(req(client="192.0.2.79")) == DEFER1


def test_override_sections(daemon):
    extra = ("[recipient postmaster@]\n"
             "checks =\n"
             "\n"
             "[client 198.51.100.0/24]\n"
             "delay = 1\n"
             "\n"
             "[recipient slow.example.org]\n"
             "delay = 1h\n"
             "\n"
             "[sender learner.example.net]\n"
             "learning = yes\n")
    d = daemon(greylist={"delay": "2h"}, extra=extra)
    c = d.client()
    pm = req(client="192.0.2.80", recipient="postmaster@example.org")
    assert c.request(pm) == "DUNNO"
    assert not any(pm["queue_id"] in m for m in d.msgs())
    lr = req(client="192.0.2.80", sender="x@learner.example.net")
    assert c.request(lr) == "DUNNO"
    assert logline("Training greylisting", lr) + \
        "; would defer, attempt 1" in d.msgs()

    fast = req(client="198.51.100.80")
    slow = req(client="198.51.100.80", recipient="y@slow.example.org")
    normal = req(client="192.0.2.80")
    assert c.request(fast) == DEFER1
    assert c.request(slow) == \
        "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 3600 seconds"
    assert c.request(normal) == \
        "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 7200 seconds"
    time.sleep(1.1)
    assert c.request(retry(fast)) == "DUNNO"
    r = c.request(retry(slow))
    assert is_defer(r) and int(re.match(DEFER_RE, r).group(1)) > 3500
    r = c.request(retry(normal))
    assert is_defer(r) and int(re.match(DEFER_RE, r).group(1)) > 7100


def test_defer_text_option(daemon):
    d = daemon(greylist={"delay": "1m",
                         "text": "Try again in %s s (%r)"})
    a = req(client="192.0.2.90", recipient="z@Example.ORG")
    assert d.client().request(a) == \
        "DEFER_IF_PERMIT 4.7.1 Try again in 60 s (Example.ORG)"


def test_retry_window_and_max_age(daemon):
    # retry_window 2 s: a first retry 3 s later starts over. max_age 2 s:
    # a passed triplet unseen for 3 s is gone (expired, swept).
    d = daemon(greylist={"delay": "1", "retry_window": "2", "max_age": "2"})
    c = d.client()
    late = req(client="192.0.2.200")
    gone = req(client="192.0.2.201")
    assert c.request(late) == DEFER1
    assert c.request(gone) == DEFER1
    time.sleep(1.1)
    assert c.request(retry(gone)) == "DUNNO"
    time.sleep(3.1)
    a, b = retry(late), retry(gone)
    assert c.request(a) == DEFER1
    assert c.request(b) == DEFER1
    for x in (a, b):
        assert logline("Initial greylisting", x) + \
            "; retry in 1s, attempt 1" in d.msgs()
