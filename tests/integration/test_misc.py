"""Odds and ends: address forms, log escaping, reply sanitising, limits on
connections, concurrency, and a few options (hostname, sync)."""

import re
import threading
import time

from helpers import HEADER_RE, logline, req, retry

DEFER1 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"


def test_ipv4_mapped_and_uppercase_ipv6_share_keys(daemon):
    d = daemon()
    c = d.client()
    a = req(client="::ffff:192.0.2.190")
    b = req(client="2001:DB8:1::1")
    assert c.request(a) == DEFER1
    assert c.request(b) == DEFER1
    time.sleep(1.1)
    assert c.request(retry(a, client_address="192.0.2.191")) == "DUNNO"
    assert c.request(retry(b, client_address="2001:db8:1::2")) == "DUNNO"


def test_untrusted_text_is_escaped_in_the_log(daemon):
    d = daemon()
    a = req(client="192.0.2.191", helo='a"b\\c\x01\x7f\u00e4',
            recipient="x@ex\u00e4mple.org")
    assert d.client().request(a) == DEFER1
    want = ('Initial greylisting: REMOTEIP="192.0.2.191" '
            'HELO="a\\"b\\\\c\\x01\\x7f\\xc3\\xa4" '
            f'SENDER="{a["sender"]}" RECIPIENT="x@ex\\xc3\\xa4mple.org" '
            f'QUEUEID="{a["queue_id"]}"; retry in 1s, attempt 1')
    assert want in d.msgs(), d.msgs()[-1]


def test_reply_text_is_sanitised(daemon):
    d = daemon(greylist={"text": "wait %s s for %r (100%%)"})
    a = req(client="192.0.2.192", recipient="x@ex\u00e4mple.org")
    assert d.client().request(a) == \
        "DEFER_IF_PERMIT 4.7.1 wait 1 s for ex??mple.org (100%)"


def test_overlong_sender_is_greylisted_like_any_other(daemon):
    """A sender longer than a key part is folded (prefix + SHA-256), not
    waved through: length is no way around greylisting. Two long senders
    that differ only at the end stay distinct triplets."""
    d = daemon()
    long1 = "a" * 1000 + "@example.net"
    long2 = "a" * 999 + "b@example.net"
    a = req(client="192.0.2.193", sender=long1)
    c = d.client()
    assert c.request(a) == DEFER1
    b = req(client="192.0.2.193", sender=long2, recipient=a["recipient"])
    assert c.request(b) == DEFER1
    assert sum(m.startswith('Initial greylisting: REMOTEIP="192.0.2.193"')
               for m in d.msgs()) == 2
    time.sleep(1.1)
    assert c.request(retry(a)) == "DUNNO"


def test_duplicate_attribute_last_wins(daemon):
    d = daemon()
    a = req(client="192.0.2.194")
    data = ("".join(f"{k}={v}\n" for k, v in a.items())
            + "client_address=198.51.100.194\n\n").encode()
    c = d.client()
    c.send_raw(data)
    assert c.read_reply() == DEFER1
    assert any(m.startswith('Initial greylisting: REMOTEIP="198.51.100.194"')
               for m in d.msgs())


def test_max_connections(daemon):
    d = daemon(top={"max_connections": "3"})
    # The start-up probe connections have gone; wait until the daemon
    # has seen them close.
    time.sleep(0.2)
    conns = [d.client() for _ in range(3)]
    for c in conns:
        assert c.request(req()) == DEFER1
    extra = d.client()
    extra.expect_closed()
    port = d.port
    assert f"warning: refusing connection on inet:127.0.0.1:{port}: " \
        "max_connections (3) reached" in d.msgs()
    for c in conns:  # the others are untouched
        assert c.request(req()) == DEFER1
    conns[0].close()
    time.sleep(0.2)
    assert d.client().request(req()) == DEFER1


def test_many_concurrent_connections(daemon):
    d = daemon()
    n, per = 100, 10
    clients = [d.client() for _ in range(n)]
    bad = []

    def run(i, c):
        for j in range(per):
            r = c.request(req(client=f"192.0.2.{i % 200 + 1}"))
            if r != DEFER1:
                bad.append(r)

    ts = [threading.Thread(target=run, args=(i, c))
          for i, c in enumerate(clients)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    print(f"{n * per} requests on {n} connections in "
          f"{time.monotonic() - t0:.2f}s")
    assert not bad
    assert len(d.log_lines("Initial greylisting:")) == n * per


def test_hostname_and_sync_options(daemon):
    d = daemon(top={"hostname": "mx1.example.test"},
               store={"sync": "no"},
               greylist={"header": "yes"})
    a = req(client="192.0.2.195")
    c = d.client()
    assert c.request(a) == DEFER1
    time.sleep(1.1)
    r = c.request(retry(a))
    assert re.match(HEADER_RE, r), r
    assert " at mx1.example.test; " in r
    assert d.stop() == 0
    # sync = no still leaves the data there after an orderly stop.
    assert "passed=1" in d.db("list").stdout


def test_requests_before_rcpt_are_dunno(daemon):
    d = daemon()
    c = d.client()
    for state in ("CONNECT", "EHLO", "MAIL"):
        a = req(client="192.0.2.196", recipient="", protocol_state=state)
        assert c.request(a) == "DUNNO"
    assert not d.log_lines('REMOTEIP="192.0.2.196"')


def test_connection_churn_leaves_no_connection_behind(daemon):
    import signal
    import socket
    from helpers import encode
    d = daemon()
    full = encode(req(client="192.0.2.197"))
    for i in range(300):
        s = socket.create_connection(("127.0.0.1", d.port))
        kind = i % 5
        if kind == 1:
            s.sendall(full[:50])
        elif kind == 2:
            s.sendall(full)  # and hang up without reading
        elif kind == 3:
            s.sendall(full + full)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            assert got.count(b"action=DEFER_IF_PERMIT") == 2, got
        elif kind == 4:
            s.sendall(b"junk\n\n")
        s.close()
    assert d.client().request(req()) == DEFER1
    time.sleep(0.5)
    d.signal(signal.SIGTERM)
    assert d.stop() == 0
    assert "stopping: 0 connection(s) open" in d.msgs(), d.msgs()[-3:]


def test_out_of_descriptors_pauses_instead_of_spinning(daemon):
    import socket
    d = daemon(nofile=40)
    conns = [socket.create_connection(("127.0.0.1", d.port))
             for _ in range(60)]  # more than the daemon has descriptors
    with open(f"/proc/{d.proc.pid}/stat") as f:
        before = sum(int(x) for x in f.read().split()[13:15])
    time.sleep(1.0)
    with open(f"/proc/{d.proc.pid}/stat") as f:
        cpu = sum(int(x) for x in f.read().split()[13:15]) - before
    warnings = d.log_lines("Too many open files")
    assert cpu < 30, f"{cpu} ticks of CPU in 1 s while out of descriptors"
    assert 1 <= len(warnings) <= 2, len(warnings)
    assert warnings[0].endswith("Too many open files; not accepting for "
                                "100 ms (1 time(s) since the last such "
                                "message)")
    for c in conns[:40]:
        c.close()
    time.sleep(0.3)
    # The connections left in the backlog are accepted and served.
    from helpers import PolicyClient
    c = PolicyClient(conns[-1])
    assert c.request(req()) == DEFER1
    assert d.client().request(req()) == DEFER1
    for c in conns[40:]:
        c.close()


def test_descriptor_limit_raised_for_max_connections(daemon):
    d = daemon(nofile=(256, 8192), top={"max_connections": "2000"})
    with open(f"/proc/{d.proc.pid}/limits") as f:
        line = [l for l in f if l.startswith("Max open files")][0]
    assert line.split()[3:5] == ["2064", "8192"], line
    assert not d.log_lines("file descriptors (RLIMIT_NOFILE)")
    # When the hard limit is too low, it says so.
    e = daemon(nofile=(64, 100), top={"max_connections": "2000"})
    assert "warning: only 100 file descriptors (RLIMIT_NOFILE) for " \
        "max_connections = 2000: raise the limit or lower " \
        "max_connections" in e.msgs()
