"""Helpers for the greyspf integration tests: policy requests and clients.

A policy request is an ordered dict of Postfix attributes, sent as
"name=value\\n" lines and an empty line; the reply is "action=VALUE\\n\\n".
Clients read exactly one reply per call and keep any further bytes, so a
test notices a reply it did not expect.
"""

import itertools
import os
import select
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("GREYSPF_BIN", str(REPO / "build" / "greyspf"))

DEFER_RE = (r"^DEFER_IF_PERMIT 4\.7\.1 Greylisted, please try again in "
            r"(\d+) seconds$")
HEADER_RE = (r"^PREPEND X-Greylist: delayed (\d+) seconds by greyspf-"
             r"[0-9A-Za-z.+~-]+ at \S+; \w{3}, \d{1,2} \w{3} \d{4} "
             r"\d\d:\d\d:\d\d \+0000$")

_seq = itertools.count(1)


def unique(prefix="q"):
    """A fresh token, for queue ids, instances and addresses."""
    return f"{prefix}{os.getpid():x}{next(_seq):05d}"


def req(client="192.0.2.10", sender=None, recipient=None, helo=None,
        queue_id=None, instance=None, client_name="unknown", **extra):
    """One RCPT-stage request as Postfix 3.7 sends it. Unset sender,
    recipient, queue_id and instance get fresh unique values."""
    n = unique("")
    a = {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "protocol_name": "ESMTP",
        "client_address": client,
        "client_name": client_name,
        "client_port": "54321",
        "reverse_client_name": client_name,
        "server_address": "127.0.0.1",
        "server_port": "25",
        "helo_name": helo if helo is not None else "mx.example.net",
        "sender": sender if sender is not None else f"s{n}@example.net",
        "recipient": (recipient if recipient is not None
                      else f"r{n}@example.org"),
        "recipient_count": "0",
        "queue_id": queue_id if queue_id is not None else f"Q{n}",
        "instance": instance if instance is not None else f"i.{n}",
        "size": "1234",
        "etrn_domain": "",
        "stress": "",
        "sasl_method": "",
        "sasl_username": "",
        "sasl_sender": "",
        "ccert_subject": "",
        "ccert_issuer": "",
        "ccert_fingerprint": "",
        "encryption_protocol": "",
        "encryption_cipher": "",
        "encryption_keysize": "0",
        "policy_context": "",
    }
    a.update(extra)
    return a


def encode(attrs):
    """Wire form of one request."""
    if isinstance(attrs, (bytes, bytearray)):
        return bytes(attrs)
    return ("".join(f"{k}={v}\n" for k, v in attrs.items()) + "\n").encode()


def logline(kind, a):
    """The log line prefix the engine writes for request a."""
    return (f'{kind}: REMOTEIP="{a["client_address"]}" '
            f'HELO="{a["helo_name"]}" SENDER="{a["sender"]}" '
            f'RECIPIENT="{a["recipient"]}" QUEUEID="{a["queue_id"]}"')


def retry(a, **changes):
    """The same message retried later (new queue id and instance, as a
    real MTA's retry gets), with optional changes."""
    b = dict(a)
    n = unique("")
    b["queue_id"] = f"Q{n}"
    b["instance"] = f"i.{n}"
    b.update(changes)
    return b


class ReplyError(AssertionError):
    pass


class _Conn:
    """Reply framing shared by socket and pipe clients."""

    timeout = 5.0

    def __init__(self):
        self.buf = b""

    def _recv(self, timeout):  # -> bytes, b"" on EOF, None on timeout
        raise NotImplementedError

    def _send(self, data):
        raise NotImplementedError

    def send(self, attrs):
        self._send(encode(attrs))

    def send_raw(self, data):
        self._send(data)

    def read_reply(self, timeout=None):
        """Exactly one reply; returns its action value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReplyError(f"no reply in time (have {self.buf!r})")
            chunk = self._recv(left)
            if chunk is None:
                continue
            if chunk == b"":
                raise ReplyError(f"connection closed (have {self.buf!r})")
            self.buf += chunk
        reply, self.buf = self.buf.split(b"\n\n", 1)
        lines = reply.split(b"\n")
        if len(lines) != 1 or not lines[0].startswith(b"action="):
            raise ReplyError(f"malformed reply {reply!r}")
        return lines[0][len(b"action="):].decode("ascii")

    def request(self, attrs=None, **kw):
        """Sends one request, returns the action value of its reply."""
        if attrs is None:
            attrs = req(**kw)
        self.send(attrs)
        return self.read_reply()

    def expect_closed(self, timeout=None):
        """The peer closes without sending anything (more)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReplyError("connection still open")
            try:
                chunk = self._recv(left)
            except ConnectionResetError:
                chunk = b""
            if chunk is None:
                continue
            if chunk == b"":
                break
            self.buf += chunk
        if self.buf:
            raise ReplyError(f"got {self.buf!r} before the close")

    def expect_nothing(self, wait=0.3):
        """No reply within wait seconds (connection still open)."""
        chunk = self._recv(wait)
        if chunk is not None:
            raise ReplyError(f"unexpected {chunk!r}")


class PolicyClient(_Conn):
    def __init__(self, sock):
        super().__init__()
        self.sock = sock
        sock.settimeout(self.timeout)

    def _send(self, data):
        self.sock.sendall(data)

    def _recv(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return None
        return self.sock.recv(65536)

    def local_port(self):
        return self.sock.getsockname()[1]

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class SpawnClient(_Conn):
    """`greyspf policy` with its stdin/stdout as the connection."""

    def __init__(self, argv):
        super().__init__()
        self.errf = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.errf, bufsize=0)

    def _send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _recv(self, timeout):
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return None
        return os.read(fd, 65536)

    def stderr(self):
        self.errf.seek(0)
        return self.errf.read().decode(errors="replace")

    def close(self, timeout=10.0):
        """Closes stdin (Postfix hangs up); returns the exit status."""
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "hung"
        finally:
            if not self.proc.stdout.closed:
                self.proc.stdout.close()


def free_port(family=socket.AF_INET):
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def has_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def write_config(path, top, store, greylist, extra=""):
    lines = [f"{k} = {v}" for k, v in top.items()]
    lines.append("")
    lines.append("[store]")
    lines += [f"{k} = {v}" for k, v in store.items()]
    lines.append("")
    lines.append("[greylist]")
    lines += [f"{k} = {v}" for k, v in greylist.items()]
    lines.append("")
    Path(path).write_text("\n".join(lines) + "\n" + extra)
