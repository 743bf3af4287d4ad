"""The greylisting flow over every transport (inet, [::1], unix, spawn),
the X-Greylist header, and request framing on one connection."""

import re
import time

import pytest

from conftest import file_mode
from helpers import (DEFER_RE, HEADER_RE, has_ipv6, logline, req, retry,
                     unique)

DEFER2 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 2 seconds"


def greylist_flow(connect, d=None):
    """First attempt deferred for the whole delay (2 s), an early retry
    deferred as Pending, a retry after the delay passes. connect() returns
    a fresh client: each attempt uses its own connection, like smtpd."""
    a = req(client="192.0.2.10")
    c = connect()
    assert c.request(a) == DEFER2
    b = retry(a)
    r = connect().request(b)
    m = re.match(DEFER_RE, r)
    assert m and m.group(1) in ("1", "2"), r
    time.sleep(2.1)
    e = retry(a)
    assert connect().request(e) == "DUNNO"
    # Passed triplets stay passed.
    assert c.request(retry(a)) == "DUNNO"
    if d is not None:
        msgs = d.msgs()
        assert logline("Initial greylisting", a) + \
            "; retry in 2s, attempt 1" in msgs
        assert any(m.startswith(logline("Pending greylisting", b) +
                                "; retry in ") and
                   m.endswith("s, attempt 2") for m in msgs), msgs
        assert any(re.fullmatch(re.escape(logline("Allowed greylisting", e))
                                + r"; delayed [23]s, attempt 3, first pass",
                                m) for m in msgs), msgs
    return a


def test_inet(daemon):
    d = daemon(listen=("inet",), greylist={"delay": "2"})
    greylist_flow(lambda: d.client("inet"), d)


def test_unix_socket_and_mode(daemon):
    d = daemon(listen=("unix",), greylist={"delay": "2"},
               top={"socket_mode": "0600"})
    assert file_mode(d.sock) == 0o600
    greylist_flow(lambda: d.client("unix"), d)
    assert d.stop() == 0
    # Running as nobody it cannot unlink its socket in a root-owned
    # directory; a restart replaces the stale one.
    d.start()
    assert file_mode(d.sock) == 0o600
    assert d.client("unix").request(req()).startswith("DEFER_IF_PERMIT")


def test_unix_socket_default_mode_owner_and_unlink(daemon):
    import os
    import pwd
    d = daemon(listen=("unix",), user=None,
               top={"socket_owner": "nobody"})
    assert file_mode(d.sock) == 0o660
    assert os.stat(d.sock).st_uid == pwd.getpwnam("nobody").pw_uid
    assert d.stop() == 0
    assert not d.sock.exists(), "socket left behind after SIGTERM"


@pytest.mark.skipif(not has_ipv6(), reason="no ::1 on this host")
def test_inet6_listener(daemon):
    d = daemon(listen=("inet6", "inet"), greylist={"delay": "2"})
    greylist_flow(lambda: d.client("inet6"), d)
    # Both listeners share one store.
    assert d.msgs()[0].startswith("listening on inet:[::1]:")


def test_spawn_mode(daemon, spawn):
    # spawn mode logs only to syslog: assert replies. Every attempt runs
    # its own `greyspf policy` process on the same store.
    d = daemon(start=False, greylist={"delay": "2"})
    greylist_flow(lambda: spawn(d.conf))


def test_spawn_and_daemon_share_the_store(daemon, spawn):
    d = daemon(greylist={"delay": "1"})
    a = req(client="198.51.100.7")
    assert spawn(d.conf).request(a).startswith("DEFER_IF_PERMIT 4.7.1 ")
    time.sleep(1.1)
    e = retry(a)
    assert d.client().request(e) == "DUNNO"
    assert any(m.startswith(logline("Allowed greylisting", e))
               for m in d.msgs())


def test_spawn_many_requests_then_eof(daemon, spawn):
    d = daemon(start=False)
    p = spawn(d.conf)
    for i in range(50):
        assert p.request(req(client="192.0.2.44")).startswith(
            "DEFER_IF_PERMIT 4.7.1 Greylisted")
    assert p.close() == 0


def test_header_once_per_instance(daemon):
    d = daemon(greylist={"delay": "1", "header": "yes"})
    rcpts = [f"{unique('u')}@example.org" for _ in range(3)]
    snd = f"{unique('s')}@example.net"
    c = d.client()
    inst = unique("i.")
    for r in rcpts:
        assert c.request(req(client="192.0.2.20", sender=snd, recipient=r,
                             instance=inst)).startswith("DEFER_IF_PERMIT")
    time.sleep(1.1)
    # The retry: one message (instance), three recipients, all first
    # passes: the header is added once, to the first.
    inst = unique("i.")
    got = [c.request(req(client="192.0.2.20", sender=snd, recipient=r,
                         instance=inst)) for r in rcpts]
    assert re.match(HEADER_RE, got[0]), got
    assert int(re.match(HEADER_RE, got[0]).group(1)) in (1, 2)
    assert got[1:] == ["DUNNO", "DUNNO"], got
    # Once passed, a later message gets no header (not a first pass).
    inst = unique("i.")
    assert c.request(req(client="192.0.2.20", sender=snd,
                         recipient=rcpts[0], instance=inst)) == "DUNNO"


def test_header_again_for_next_message_on_same_connection(daemon):
    d = daemon(greylist={"delay": "1", "header": "yes"})
    c = d.client()
    m1 = [req(client="192.0.2.21", instance="i.m1") for _ in range(2)]
    m2 = [req(client="192.0.2.21", instance="i.m2") for _ in range(2)]
    for a in m1 + m2:
        assert c.request(a).startswith("DEFER_IF_PERMIT")
    time.sleep(1.1)
    got1 = [c.request(retry(a, instance="i.m1b")) for a in m1]
    got2 = [c.request(retry(a, instance="i.m2b")) for a in m2]
    assert re.match(HEADER_RE, got1[0]) and got1[1] == "DUNNO", got1
    assert re.match(HEADER_RE, got2[0]) and got2[1] == "DUNNO", got2


def test_many_requests_on_one_connection(daemon):
    d = daemon()
    c = d.client()
    reqs = [req(client="192.0.2.30") for _ in range(300)]
    for a in reqs:
        assert c.request(a) == \
            "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"
    # The same triplets again: pending or (after a second) allowed, never
    # initial.
    for a in reqs[:20]:
        r = c.request(retry(a))
        assert r == "DUNNO" or re.match(DEFER_RE, r), r
    assert len(d.log_lines("Initial greylisting:")) == 300


def test_several_requests_in_one_write(daemon):
    d = daemon()
    c = d.client()
    reqs = [req(client="192.0.2.31") for _ in range(25)]
    c.send_raw(b"".join(
        ("".join(f"{k}={v}\n" for k, v in a.items()) + "\n").encode()
        for a in reqs))
    for _ in reqs:
        assert c.read_reply().startswith("DEFER_IF_PERMIT 4.7.1 ")
    c.expect_nothing(0.3)
    msgs = d.msgs()
    for a in reqs:
        assert logline("Initial greylisting", a) + \
            "; retry in 1s, attempt 1" in msgs


def test_request_split_byte_by_byte(daemon):
    d = daemon()
    c = d.client()
    a = req(client="192.0.2.32")
    data = ("".join(f"{k}={v}\n" for k, v in a.items()) + "\n").encode()
    c.sock.setsockopt(6, 1, 1)  # TCP_NODELAY: one segment per byte
    for i in range(len(data)):
        c.send_raw(data[i:i + 1])
        if i % 97 == 0:
            time.sleep(0.002)
        if i == len(data) - 2:
            c.expect_nothing(0.2)  # not answered before its empty line
    assert c.read_reply().startswith("DEFER_IF_PERMIT 4.7.1 ")
    assert logline("Initial greylisting", a) + \
        "; retry in 1s, attempt 1" in d.msgs()
    # And the connection still works for a normal request.
    assert c.request(req(client="192.0.2.32")).startswith("DEFER_IF_PERMIT")


def test_request_without_recipient_is_dunno(daemon):
    # Greylisting is per recipient: a request from an earlier stage
    # (no recipient) is not greylisted.
    d = daemon()
    c = d.client()
    assert c.request(req(client="192.0.2.33", recipient="",
                         protocol_state="MAIL")) == "DUNNO"


def test_spawn_mode_reads_a_file_on_stdin(daemon, workdir):
    # `greyspf policy < requests.txt`: handy for testing; must not hang.
    import subprocess
    from helpers import BIN, encode
    d = daemon(start=False)
    f = workdir / "requests.txt"
    f.write_bytes(b"".join(encode(req(client="192.0.2.66"))
                           for _ in range(3)))
    with open(f, "rb") as stdin:
        r = subprocess.run([BIN, "policy", "-c", str(d.conf)], stdin=stdin,
                           capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (b"action=" + DEFER2.replace("2 seconds", "1 seconds")
                        .encode() + b"\n\n") * 3, r.stdout
    assert r.stderr == b""
