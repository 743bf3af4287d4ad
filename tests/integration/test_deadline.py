"""reply_deadline and request assembly: every request Postfix sends is
answered within reply_deadline, even the ones queued behind a late
decision, and a peer that trickles a request cannot hold a connection."""

import socket
import threading
import time

import pytest

from helpers import req


class StalledRedis:
    """Accepts connections and reads, never answers: a Redis that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def stalled_redis():
    r = StalledRedis()
    yield r
    r.close()


def test_each_request_gets_its_own_deadline(daemon, stalled_redis):
    d = daemon(top={"reply_deadline": "2"},
               store={"backend": "redis",
                      "redis": f"redis://127.0.0.1:{stalled_redis.port}/0",
                      "redis_timeout": "6s"},
               extra="[spf]\ntime_limit = 1\n")
    c = d.client(timeout=15)
    t0 = time.monotonic()
    assert c.request(req(client="192.0.2.61")) == "DUNNO"
    t1 = time.monotonic()
    # Postfix's next request comes at once; the first decision is still
    # waiting for the store (6 s), but this one has its own deadline.
    assert c.request(req(client="192.0.2.62")) == "DUNNO"
    t2 = time.monotonic()
    assert 1.8 < t1 - t0 < 3.0, t1 - t0
    assert 1.8 < t2 - t1 < 3.0, t2 - t1
    assert d.log().count("no decision within reply_deadline (2s); "
                         "answering DUNNO") == 2
    # The late decisions come back later and are dropped: no stray reply.
    time.sleep(4.5)
    c.expect_nothing(wait=0.5)


def test_trickled_request_is_closed(daemon):
    d = daemon()
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall(b"request=smtpd_access_policy\n")
    t0 = time.monotonic()
    s.settimeout(40)
    # A byte every few seconds keeps the idle timer away but not the
    # request timeout (30 s from the first byte).
    deadline = t0 + 40
    closed = False
    while time.monotonic() < deadline:
        try:
            s.sendall(b"x")
        except OSError:
            closed = True
            break
        s.settimeout(3)
        try:
            if s.recv(100) == b"":
                closed = True
                break
        except socket.timeout:
            pass
    took = time.monotonic() - t0
    s.close()
    assert closed
    assert 29 < took < 36, took
    d.wait_log("request still incomplete after 30s; closing the connection")
    # the daemon serves others as before
    assert d.client().request(req(client="192.0.2.63")).startswith(
        "DEFER_IF_PERMIT")
