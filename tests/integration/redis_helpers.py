"""A private redis-server for the Redis store tests.

RedisServer runs /usr/bin/redis-server on its own loopback port with its
own directory and no persistence (--save '' --appendonly no); it can be
paused (SIGSTOP: a Redis that stops answering), killed (a Redis that is
gone) and started again on the same port. The `redis_server` fixture (import
it into a test module) yields one and stops it by PID at teardown, whatever
state the test left it in. Tests are skipped when redis-server is not
installed.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers import free_port

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
REDIS_CLI = "/usr/bin/redis-cli"
# Seconds redis-server may take to answer PING after start.
START_TIMEOUT = 10.0


class RedisServer:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="greyspf-redis-",
                                         dir="/tmp"))
        self.port = free_port()
        self.proc = None
        self.paused = False

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.logf = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited at start:\n"
                                     + (self.dir / "redis.log").read_text())
            try:
                if self.cli("PING") == "PONG":
                    return self
            except subprocess.SubprocessError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("redis-server never answered PING")
            time.sleep(0.05)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def kill(self):
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self.proc.kill()
        self.proc.wait()
        self.logf.close()
        self.proc = None

    def cli(self, *args, timeout=5):
        r = subprocess.run([REDIS_CLI, "-p", str(self.port), "--raw", *args],
                           capture_output=True, text=True, timeout=timeout)
        return r.stdout.rstrip("\n")

    def command(self, *args, timeout=5.0):
        """One command over RESP, binary-safe (str args are latin-1, so a
        key from keys() goes back unchanged). Returns int, str, None or a
        list; an error reply raises."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout)
        try:
            parts = [f"*{len(args)}\r\n".encode()]
            for a in args:
                b = a if isinstance(a, bytes) else str(a).encode("latin-1")
                parts.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
            s.sendall(b"".join(parts))
            return _read_reply(s.makefile("rb"))
        finally:
            s.close()

    def keys(self, pattern="*"):
        """Key names, binary-safe (triplet keys hold NULs): redis-cli
        quotes each one, "\\xHH" for bytes outside printable ASCII."""
        r = subprocess.run([REDIS_CLI, "-p", str(self.port), "--no-raw",
                            "--scan", "--pattern", pattern],
                           capture_output=True, text=True, timeout=5)
        return sorted(unquote(k) for k in r.stdout.splitlines() if k)

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _read_reply(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode("latin-1")
    if kind == b"-":
        raise AssertionError(f"redis error: {rest!r}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:n]
        return data.decode("latin-1")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise AssertionError(f"bad reply line {line!r}")


def unquote(q):
    """One name as redis-cli --no-raw prints it ("..." with escapes)."""
    if not (len(q) >= 2 and q[0] == '"' and q[-1] == '"'):
        return q
    q = q[1:-1]
    out = []
    i = 0
    simple = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b",
              '"': '"', "\\": "\\"}
    while i < len(q):
        ch = q[i]
        if ch == "\\" and i + 1 < len(q):
            nxt = q[i + 1]
            if nxt == "x" and i + 3 < len(q):
                out.append(chr(int(q[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(simple.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def redis_store(server, **extra):
    """The [store] section of a daemon on server."""
    s = {"backend": "redis", "redis": server.url}
    s.update(extra)
    return s


@pytest.fixture
def redis_server():
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip(f"{REDIS_SERVER} not installed (apt-get install "
                    "redis-server)")
    srv = RedisServer()
    try:
        yield srv.start()
    finally:
        srv.close()
