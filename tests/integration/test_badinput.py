"""Malformed and oversized input: the offending connection is closed
without a reply and a warning logged; every other connection, opened
before or after, keeps being served and the daemon stays up."""

import time

import pytest

from helpers import encode, req

DEFER_PREFIX = "DEFER_IF_PERMIT 4.7.1 Greylisted"
LINE_MAX = 4096       # policy.h POLICY_LINE_MAX, LF included
REQUEST_MAX = 32768   # policy.h POLICY_REQUEST_MAX, empty line included


def padded_request(total, client="192.0.2.120"):
    """A valid request of exactly `total` bytes (filler attributes of
    at most 1000 bytes each, so no line limit is reached)."""
    head = encode(req(client=client))[:-1]  # without the empty line
    need = total - len(head) - 1
    lines = []
    i = 0
    while need > 0:
        name = f"x_filler{i:02d}="
        size = min(1000, need)
        if need - size and need - size < len(name) + 2:
            size -= len(name) + 2  # leave room for one more line
        val = "a" * (size - len(name) - 1)
        lines.append(f"{name}{val}\n")
        need -= size
        i += 1
    data = head + "".join(lines).encode() + b"\n"
    assert len(data) == total
    return data


def junk():
    # Deterministic binary junk without NUL, with a few LFs.
    return bytes((i * 37 + 11) % 255 + 1 for i in range(3000)) + b"\n\n"


def long_line():
    return (b"request=smtpd_access_policy\nhelo_name="
            + b"h" * (LINE_MAX + 100) + b"\n\n")


BAD = {
    "line_without_equals": (
        b"request=smtpd_access_policy\nthis line has no equals\n\n",
        "line without '=' in request: \"this line has no equals\""),
    "empty_name": (b"request=smtpd_access_policy\n=value\n\n",
                   "empty attribute name in request: \"=value\""),
    "line_over_4096": (long_line(),
                       f"request line longer than {LINE_MAX} bytes"),
    "request_over_32k": (padded_request(REQUEST_MAX + 1),
                         f"request larger than {REQUEST_MAX} bytes"),
    "binary_junk": (junk(), None),
    "nul_byte": (encode(req(helo="mx\x00.example.net")),
                 "NUL byte in request"),
    "nul_only": (b"\x00" * 100 + b"\n\n", "NUL byte in request"),
    "no_request_attr": (b"client_address=192.0.2.1\n\n",
                        "no \"request\" attribute"),
    "unknown_request_type": (b"request=junk_request\n\n",
                             "unknown request type \"junk_request\""),
    "too_many_attributes": (
        b"request=smtpd_access_policy\n"
        + b"".join(b"a%d=b\n" % i for i in range(70)) + b"\n",
        "more than 64 attributes"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_request_closes_only_that_connection(daemon, case):
    data, why = BAD[case]
    d = daemon()
    before = d.client()
    assert before.request(req(client="192.0.2.121")).startswith(DEFER_PREFIX)
    bad = d.client()
    port = bad.local_port()
    bad.send_raw(data)
    bad.expect_closed()
    expected = f"warning: 127.0.0.1:{port}: "
    lines = [m for m in d.msgs() if m.startswith(expected)]
    assert len(lines) == 1, d.msgs()
    assert lines[0].endswith("; closing the connection without a reply")
    if why is not None:
        assert lines[0] == f"{expected}{why}; closing the connection " \
                           "without a reply"
    # The connection opened before and one opened after still work.
    assert before.request(req(client="192.0.2.122")).startswith(DEFER_PREFIX)
    after = d.client()
    assert after.request(req(client="192.0.2.123")).startswith(DEFER_PREFIX)
    assert d.running()
    assert not d.log_lines("Initial greylisting: REMOTEIP=\"192.0.2.120\"")


def test_bad_request_after_good_one_in_same_write(daemon):
    d = daemon()
    c = d.client()
    good = req(client="192.0.2.124")
    c.send_raw(encode(good) + b"garbage\n\n" + encode(req()))
    assert c.read_reply().startswith(DEFER_PREFIX)
    c.expect_closed()
    assert len(d.log_lines("Initial greylisting:")) == 1


def test_limits_exactly_reached_are_accepted(daemon):
    d = daemon()
    c = d.client()
    line = b"helo_name=" + b"h" * (LINE_MAX - len("helo_name=") - 1) + b"\n"
    assert len(line) == LINE_MAX
    a = encode(req(client="192.0.2.125"))
    c.send_raw(a[:-1] + line + b"\n")
    assert c.read_reply().startswith(DEFER_PREFIX)
    c.send_raw(padded_request(REQUEST_MAX, client="192.0.2.126"))
    assert c.read_reply().startswith(DEFER_PREFIX)
    assert not d.log_lines("closing the connection")


def test_unix_bad_request_is_logged(daemon):
    d = daemon(listen=("unix",))
    bad = d.client("unix")
    bad.send_raw(b"no equals here\n\n")
    bad.expect_closed()
    assert any(m.startswith("warning: unix:") and
               m.endswith("line without '=' in request: \"no equals "
                          "here\"; closing the connection without a reply")
               for m in d.msgs()), d.msgs()
    assert d.client("unix").request(req()).startswith(DEFER_PREFIX)


def test_partial_request_then_hangup(daemon):
    d = daemon()
    c = d.client()
    c.send_raw(encode(req())[:100])
    c.close()
    assert d.client().request(req()).startswith(DEFER_PREFIX)
    assert d.running()
    assert not d.log_lines("closing the connection")


def test_bad_client_address_gets_dunno(daemon):
    d = daemon()
    c = d.client()
    assert c.request(req(client="not-an-ip")) == "DUNNO"
    assert 'warning: request without a usable client_address ' \
        '"not-an-ip"; ' \
        'answering DUNNO' in d.msgs()
    assert c.request(req(client="192.0.2.127")).startswith(DEFER_PREFIX)


def test_spawn_bad_request_exits(daemon, spawn):
    d = daemon(start=False)
    p = spawn(d.conf)
    assert p.request(req()).startswith(DEFER_PREFIX)
    p.send_raw(b"junk without equals\n\n")
    p.expect_closed()
    assert p.proc.wait(5) == 0


def test_pipelined_flood_then_half_close_gets_every_reply(daemon):
    """A client that writes many requests without reading, then
    half-closes (nc < file): every request is answered before the close,
    even when the replies outgrow the socket buffers."""
    import socket
    import threading
    d = daemon()
    one = b"request=smtpd_access_policy\nclient_address=192.0.2.1\n\n"
    n = 400000  # 5.6 MB of replies: more than any socket buffer here
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", d.port))
    s.settimeout(30)

    def writer():
        s.sendall(one * n)
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(1.0)  # let the daemon's output stall on the full buffers
    got = bytearray()
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    t.join(30)
    s.close()
    assert got.count(b"action=DUNNO\n\n") == n, len(got)
    assert len(got) == n * len(b"action=DUNNO\n\n")
    assert d.running()


def _redis_server(workdir):
    import shutil
    import socket
    import subprocess
    from helpers import free_port
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)


@pytest.mark.skipif(not __import__("os").path.exists("/usr/bin/redis-server"),
                    reason="redis-server not installed")
def test_pipelining_client_cannot_make_the_daemon_buffer_its_stream(
        daemon, workdir):
    """With an asynchronous store every request waits for round trips; a
    client that pipelines (and reads its replies) must be held back by
    TCP, not have its whole stream buffered in the daemon."""
    import socket
    import threading
    from helpers import encode
    rproc, rport = _redis_server(workdir)
    try:
        d = daemon(user=None, store={"backend": "redis",
                                     "redis": f"redis://127.0.0.1:{rport}/0"})
        n = 60000
        reqs = [encode(req(client="192.0.2.2", sender="a@example.net",
                           recipient=f"r{i}@example.org", queue_id="Q",
                           instance="i")) for i in range(n)]
        size = len(reqs[0])
        assert all(len(r) == size for r in reqs[:10])
        data = b"".join(reqs)
        s = socket.create_connection(("127.0.0.1", d.port))
        s.settimeout(60)
        state = {"sent": 0, "replies": 0, "ahead": 0}

        def reader():
            buf = b""
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                state["replies"] += chunk.count(b"\n\n")
                ahead = state["sent"] - state["replies"] * size
                state["ahead"] = max(state["ahead"], ahead)

        t = threading.Thread(target=reader)
        t.start()
        for off in range(0, len(data), 1 << 16):
            s.sendall(data[off:off + (1 << 16)])
            state["sent"] = off + len(data[off:off + (1 << 16)])
        s.shutdown(socket.SHUT_WR)
        t.join(60)
        s.close()
        assert state["replies"] == n
        # Kernel socket buffers hold a few MB at most; the rest of the
        # stream (here 30 MB) must still have been with the client.
        assert state["ahead"] < len(data) // 3, (state, len(data))
    finally:
        rproc.kill()
        rproc.wait()
