#!/usr/bin/python3
"""Self-test of bench/loadgen: does it judge replies the way Postfix would?

Runs loadgen against small fake policy servers on loopback, each answering
in one particular way, and checks loadgen's --json verdict:
  - a correct reply sent one byte at a time (partial reads) is accepted;
  - CR, extra bytes after the empty line, an empty action, a missing empty
    line, EOF and silence are errors of the right kind;
  - the request has the attributes promised (9 minimal, 29 full), ends with
    an empty line, and repeats reuse earlier triplets.
Not a CTest test (bench/ registers none); run by hand:
    /usr/bin/python3 bench/selftest.py BUILD_DIR/bench/loadgen
"""
import json
import socket
import subprocess
import sys
import threading
import time


def serve(reply_fn, requests_seen):
    """Start a one-thread-per-connection fake server; return its port."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)

    def conn_loop(c):
        buf = b""
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n\n" in buf:
                    req, buf = buf.split(b"\n\n", 1)
                    requests_seen.append(req)
                    if not reply_fn(c):
                        return

    def accept_loop():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=conn_loop, args=(c,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return lsock, lsock.getsockname()[1]


def send(data, pieces=1):
    def fn(c):
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            c.sendall(data[i:i + step])
            if pieces > 1:
                time.sleep(0.001)
        return True
    return fn


def hang(c):
    time.sleep(5)
    return False


def close(c):
    return False


def run(loadgen, reply_fn, *args):
    seen = []
    lsock, port = serve(reply_fn, seen)
    out = subprocess.run([loadgen, "--json", *args, f"inet:127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=60)
    lsock.close()
    return json.loads(out.stdout), out.returncode, seen


def main():
    loadgen = sys.argv[1]
    failures = 0

    def check(name, cond, detail=""):
        nonlocal failures
        print(("ok   " if cond else "FAIL ") + name, detail)
        if not cond:
            failures += 1

    res, rc, seen = run(loadgen, send(b"action=DEFER_IF_PERMIT Greylisted\n\n",
                                      pieces=36), "-n", "20", "-c", "2")
    check("byte-at-a-time reply accepted",
          rc == 0 and res["requests"] == 20 and res["errors"] == 0 and
          res["actions"] == {"DEFER_IF_PERMIT": 20}, str(res))

    bad = [
        ("CRLF reply", b"action=DUNNO\r\n\r\n", "bad_reply"),
        ("bytes after the empty line", b"action=DUNNO\n\nx", "bad_reply"),
        ("two attribute lines", b"action=DUNNO\nfoo=bar\n\n", "bad_reply"),
        ("not action=", b"Action=DUNNO\n\n", "bad_reply"),
        ("empty action", b"action=\n\n", "empty_action"),
    ]
    for name, data, kind in bad:
        res, rc, _ = run(loadgen, send(data), "-n", "5", "-c", "1")
        check(name + " is an error", rc == 1 and
              res["error_kinds"][kind] >= 1 and res["requests"] == 0,
              str(res["error_kinds"]))

    res, rc, _ = run(loadgen, close, "-n", "3", "-c", "1")
    check("EOF is an error", rc == 1 and res["error_kinds"]["eof"] >= 1)
    res, rc, _ = run(loadgen, hang, "-n", "1", "-c", "1", "--timeout", "0.5")
    check("silence is a timeout", rc == 1 and
          res["error_kinds"]["timeout"] >= 1)

    for mode, count in (("minimal", 9), ("full", 29)):
        res, rc, seen = run(loadgen, send(b"action=DUNNO\n\n"), "-n", "200",
                            "-c", "4", "--attrs", mode, "-r", "0.5")
        lines = seen[0].split(b"\n")
        names = [ln.split(b"=", 1)[0] for ln in lines]
        check(f"{mode}: {count} attributes, all name=value",
              len(lines) == count and all(b"=" in ln for ln in lines) and
              len(set(names)) == count, str(names))
        triplets = [tuple(ln for ln in r.split(b"\n")
                          if ln.split(b"=")[0] in
                          (b"client_address", b"sender", b"recipient"))
                    for r in seen]
        distinct = len(set(triplets))
        check(f"{mode}: about half the requests repeat a triplet",
              60 <= distinct <= 140, f"{distinct} distinct of {len(seen)}")
    print("FAILED" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
