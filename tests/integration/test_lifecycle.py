"""Start-up refusals, SIGTERM (idle and with a request in flight), and a
kill -9 under load followed by a restart on the same store."""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from helpers import BIN, logline, req, retry, write_config, free_port

DEFER1 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"

# Holds LMDB's writer lock from another process, so that the daemon's next
# store write blocks inside the loop: a request is then provably in flight.
LOCKER = r"""
import ctypes, sys
lib = ctypes.CDLL("liblmdb.so.0")
env = ctypes.c_void_p()
assert lib.mdb_env_create(ctypes.byref(env)) == 0
lib.mdb_env_set_maxdbs(env, 8)
rc = lib.mdb_env_open(env, sys.argv[1].encode(), 0, 0o640)
assert rc == 0, rc
txn = ctypes.c_void_p()
rc = lib.mdb_txn_begin(env, None, 0, ctypes.byref(txn))
assert rc == 0, rc
print("locked", flush=True)
sys.stdin.readline()
lib.mdb_txn_abort(txn)
lib.mdb_env_close(env)
"""


def run_serve(conf, timeout=10):
    return subprocess.run([BIN, "serve", "-c", str(conf)],
                          capture_output=True, text=True, timeout=timeout)


def wchan(pid):
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read()
    except OSError:
        return ""


def test_refuses_root_without_user(workdir):
    conf = workdir / "root.conf"
    write_config(conf, {"listen": f"inet:127.0.0.1:{free_port()}",
                        "log": "stderr", "user": "", "allow_root": "no"},
                 {"path": str(workdir / "store")}, {"delay": "1"})
    r = run_serve(conf)
    assert r.returncode != 0
    assert "refusing to serve as root: set `user` (or allow_root = yes)" \
        in r.stderr, r.stderr
    # spawn mode refuses too (its message goes to syslog).
    p = subprocess.run([BIN, "policy", "-c", str(conf)], input=b"",
                       capture_output=True, timeout=10)
    assert p.returncode != 0
    assert p.stdout == b""


@pytest.mark.parametrize("user,msg", [
    ("nosuchuser-greyspf", 'unknown user "nosuchuser-greyspf"'),
    ("root", 'user "root" is root'),
])
def test_refuses_bad_user(workdir, user, msg):
    conf = workdir / "u.conf"
    write_config(conf, {"listen": f"inet:127.0.0.1:{free_port()}",
                        "log": "stderr", "user": user},
                 {"path": str(workdir / "store")}, {"delay": "1"})
    r = run_serve(conf)
    assert r.returncode != 0
    assert msg in r.stderr, r.stderr


def test_listen_address_in_use(workdir):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    conf = workdir / "busy.conf"
    write_config(conf, {"listen": f"inet:127.0.0.1:{port}",
                        "log": "stderr", "user": "nobody"},
                 {"path": str(workdir / "store")}, {"delay": "1"})
    r = run_serve(conf)
    s.close()
    assert r.returncode != 0
    assert f"inet:127.0.0.1:{port}" in r.stderr and "in use" in r.stderr, \
        r.stderr


def test_drops_privileges_and_owns_store(daemon):
    import pwd
    d = daemon()
    nobody = pwd.getpwnam("nobody").pw_uid
    with open(f"/proc/{d.proc.pid}/status") as f:
        uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
    assert uids == [str(nobody)] * 4
    assert os.stat(d.store_path).st_uid == nobody
    assert d.client().request(req()) == DEFER1
    for f in d.store_path.iterdir():
        assert os.stat(f).st_uid == nobody, f


def test_sigterm_idle(daemon):
    d = daemon(listen=("inet", "unix"))
    conns = [d.client("inet"), d.client("unix"), d.client("inet")]
    assert conns[0].request(req()) == DEFER1
    d.wait_log("Initial greylisting")
    d.signal(signal.SIGTERM)
    for c in conns:
        c.expect_closed()
    assert d.stop() == 0, d.log()
    msgs = d.msgs()
    assert "stopping: 3 connection(s) open" in msgs, msgs
    assert msgs[-1] == "stopped"


def test_repeated_sigterm_still_exits_zero(daemon):
    # A second SIGTERM (systemd plus an impatient admin) must not kill the
    # process halfway through its orderly shutdown (store flush).
    for _ in range(5):
        d = daemon()
        assert d.client().request(req()) == DEFER1
        while d.proc.poll() is None:
            try:
                d.signal(signal.SIGTERM)
            except ProcessLookupError:
                break
            time.sleep(0.0005)
        assert d.stop() == 0, d.log()


def test_sigterm_answers_request_in_flight(daemon):
    d = daemon()
    c = d.client()
    idle = d.client()
    assert c.request(req(client="192.0.2.170")) == DEFER1
    locker = subprocess.Popen(["/usr/bin/python3", "-c", LOCKER,
                               str(d.store_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        a = req(client="192.0.2.171")
        c.send(a)
        # Wait until the daemon is blocked on the store's writer lock with
        # the request read and its decision under way.
        deadline = time.monotonic() + 5
        while "futex" not in wchan(d.proc.pid):
            assert time.monotonic() < deadline, wchan(d.proc.pid)
            time.sleep(0.01)
        d.signal(signal.SIGTERM)
        time.sleep(0.2)
        assert d.running()
    finally:
        locker.stdin.write("\n")
        locker.stdin.close()
        assert locker.wait(5) == 0
    assert c.read_reply() == DEFER1
    c.expect_closed()
    idle.expect_closed()
    assert d.stop() == 0
    msgs = d.msgs()
    assert logline("Initial greylisting", a) + \
        "; retry in 1s, attempt 1" in msgs
    assert "stopping: 2 connection(s) open" in msgs
    assert msgs[-1] == "stopped"
    # Its decision was committed.
    dump = [json.loads(l) for l in d.db("dump").stdout.splitlines()]
    assert any(r.get("recipient") == a["recipient"] for r in dump)


def _load(d, tid, stop, results, errors):
    """Postfix-like client: one request at a time; records every request
    whose DEFER reply arrived."""
    try:
        c = d.client()
    except OSError as e:
        errors.append(e)
        return
    i = 0
    while not stop.is_set():
        a = req(client=f"192.0.2.{tid + 1}", sender=f"load{tid}@example.net",
                recipient=f"u{tid}n{i}z@example.org")
        i += 1
        try:
            c.send(a)
            r = c.read_reply(timeout=5)
        except (OSError, AssertionError):
            return  # killed
        if r != DEFER1:
            errors.append(r)
            return
        results.append(a)


def test_kill9_under_load_keeps_every_answered_triplet(daemon):
    d = daemon(greylist={"delay": "1", "auto_whitelist": "0"})
    stop = threading.Event()
    results, errors = [], []
    threads = [threading.Thread(target=_load,
                                args=(d, t, stop, results, errors))
               for t in range(6)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    while len(results) < 3000 and time.monotonic() - t0 < 20:
        time.sleep(0.01)
    d.kill9()  # while the clients are still sending
    elapsed = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(10)
    answered = list(results)
    assert not errors, errors[:3]
    assert len(answered) >= 3000, len(answered)
    print(f"{len(answered)} answered in {elapsed:.2f}s before kill -9")

    # The store opens again, with every answered triplet in it.
    d.start()
    dump = [json.loads(l) for l in d.db("dump").stdout.splitlines()]
    stored = {(r["net"], r["sender"], r["recipient"]) for r in dump
              if r["table"] == "triplets"}
    missing = [a for a in answered
               if ("192.0.2.0/24", a["sender"], a["recipient"]) not in stored]
    assert not missing, f"{len(missing)} answered triplets lost"
    listed = d.db("list", "--recipient", answered[0]["recipient"]).stdout
    assert answered[0]["recipient"] in listed and "pending" in listed

    # After the delay, every retry passes: none is Initial again.
    initial_before = len(d.log_lines("Initial greylisting"))
    time.sleep(1.1)
    bad = []

    def check(part):
        c = d.client()
        for a in part:
            r = c.request(retry(a))
            if r != "DUNNO":
                bad.append((a["recipient"], r))

    parts = [answered[i::6] for i in range(6)]
    ts = [threading.Thread(target=check, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not bad, bad[:5]
    assert len(d.log_lines("Initial greylisting")) == initial_before
    assert len(d.log_lines("Allowed greylisting")) == len(answered)


def test_spawn_mode_sigterm_exits_when_idle(daemon, spawn):
    # `postfix stop` or an upgrade: an idle spawn-mode process must not
    # linger until Postfix hangs up (or reply_deadline passes).
    d = daemon(start=False)
    p = spawn(d.conf)
    assert p.request(req()) == DEFER1
    t0 = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    try:
        rc = p.proc.wait(3)
    except subprocess.TimeoutExpired:
        rc = "still running after 3 s"
    assert rc == 0, rc
    assert time.monotonic() - t0 < 3
    p.expect_closed()


def test_spawn_mode_sigterm_answers_request_in_flight(daemon, spawn):
    d = daemon(start=False)
    p = spawn(d.conf)
    assert p.request(req()) == DEFER1
    locker = subprocess.Popen(["/usr/bin/python3", "-c", LOCKER,
                               str(d.store_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        p.send(req(client="192.0.2.172"))
        deadline = time.monotonic() + 5
        while "futex" not in wchan(p.proc.pid):
            assert time.monotonic() < deadline, wchan(p.proc.pid)
            time.sleep(0.01)
        p.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert p.proc.poll() is None
    finally:
        locker.stdin.write("\n")
        locker.stdin.close()
        assert locker.wait(5) == 0
    assert p.read_reply() == DEFER1
    p.expect_closed()
    assert p.proc.wait(5) == 0


def test_unix_socket_of_a_running_daemon_is_not_stolen(daemon):
    d1 = daemon(listen=("unix",), name="first")
    d2 = daemon(listen=(), name="second", start=False)
    d2.sock = d1.sock
    d2.rewrite(top={"listen": f"unix:{d1.sock}"})
    r = run_serve(d2.conf)
    assert r.returncode != 0
    assert f"unix:{d1.sock}: in use by another process" in r.stderr, \
        r.stderr
    assert d1.client("unix").request(req()) == DEFER1


def test_unix_socket_path_that_is_not_a_socket(workdir):
    path = workdir / "regular-file"
    path.write_text("precious\n")
    conf = workdir / "f.conf"
    write_config(conf, {"listen": f"unix:{path}", "log": "stderr",
                        "user": "nobody"},
                 {"path": str(workdir / "store")}, {"delay": "1"})
    r = run_serve(conf)
    assert r.returncode != 0
    assert f"unix:{path}: exists and is not a socket" in r.stderr
    assert path.read_text() == "precious\n"


def test_sighup_during_startup_is_not_fatal(daemon):
    # logrotate may send SIGHUP at any time, also while the daemon is
    # still starting (listeners bound, handlers not yet installed).
    for _ in range(5):
        d = daemon(start=False)
        logf = open(d.logpath, "ab")
        proc = subprocess.Popen([BIN, "serve", "-c", str(d.conf)],
                                stdout=logf, stderr=logf)
        deadline = time.monotonic() + 5
        # Once the listener is bound (before that the process may not
        # even have reached main()), signal until it says it serves.
        while not d._accepting() and proc.poll() is None and \
                time.monotonic() < deadline:
            pass
        while "serving (store" not in d.log():
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.0002)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(10)
        logf.close()
        assert alive and rc == 0, (rc, d.log())


def test_group_and_socket_group(daemon):
    import grp
    gid = grp.getgrnam("daemon").gr_gid
    d = daemon(listen=("unix",), top={"group": "daemon",
                                      "socket_group": "daemon",
                                      "socket_mode": "0660"})
    with open(f"/proc/{d.proc.pid}/status") as f:
        st = {l.split(":")[0]: l.split()[1:] for l in f}
    assert st["Gid"] == [str(gid)] * 4
    assert st["Groups"] == [str(gid)]
    assert os.stat(d.sock).st_gid == gid
    assert d.client("unix").request(req()) == DEFER1
    assert os.stat(d.store_path).st_gid == gid


def test_sigint_stops_like_sigterm(daemon):
    d = daemon()
    c = d.client()
    assert c.request(req()) == DEFER1
    d.signal(signal.SIGINT)
    c.expect_closed()
    assert d.stop() == 0
    assert d.msgs()[-1] == "stopped"


def test_sigterm_stops_accepting_and_delivers_pending_replies(daemon):
    d = daemon()
    one = b"request=smtpd_access_policy\nclient_address=192.0.2.1\n\n"
    a = socket.socket()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    a.connect(("127.0.0.1", d.port))
    a.settimeout(20)

    def flood():
        try:
            a.sendall(one * 400000)
        except OSError:
            pass  # the daemon stopped reading and closed

    t = threading.Thread(target=flood)
    t.start()
    time.sleep(0.5)  # replies pile up: A does not read
    d.signal(signal.SIGTERM)
    d.wait_log("stopping: 1 connection(s) open")
    time.sleep(0.2)
    assert d.running()  # A's replies are still being delivered
    b = d.client()  # queued by the kernel, never accepted
    b.send(req())
    b.expect_nothing(0.3)
    got = bytearray()
    while True:
        chunk = a.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    t.join(20)
    a.close()
    assert d.stop() == 0
    unit = b"action=DUNNO\n\n"
    assert len(got) > 0 and len(got) % len(unit) == 0, d.msgs()[-4:]
    assert got == unit * (len(got) // len(unit))
    b.expect_closed()


@pytest.fixture
def small_fs(workdir):
    """A 72 MiB tmpfs (needs mount privileges; skipped without): room for
    the store's initial 64 MiB map and little else."""
    mnt = workdir / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=72m,mode=0755",
                        "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path):
    """Writes zeros to path until the file system is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass


def test_full_file_system_is_no_crash(daemon, small_fs):
    """The store reserves its map's blocks when it opens (and before it
    grows): LMDB writes through a shared map, and a write to an
    unreserved page of a full file system would be a SIGBUS. With the
    disk full after start, the daemon goes on deciding and storing."""
    d = daemon(store={"path": str(small_fs / "db"),
                      "on_store_error": "defer"})
    fill(small_fs / "filler")
    c = d.client()
    for i in range(2000):
        r = c.request(req(client="192.0.2.5",
                          sender=f"{i}-" + "x" * 200 + "@example.net"))
        assert r.startswith("DEFER_IF_PERMIT 4.7.1 "), r
    assert d.running()
    assert "2000 record(s)" in d.db("list").stderr


def test_store_on_a_full_file_system_refuses_to_start(daemon, small_fs):
    fill(small_fs / "filler")
    d = daemon(store={"path": str(small_fs / "db")}, start=False)
    r = subprocess.run([BIN, "serve", "-c", str(d.conf)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1, r
    assert "cannot reserve 64 MiB of disk for the store: No space left " \
        "on device" in r.stderr
