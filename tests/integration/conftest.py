"""Integration harness for greyspf: runs the real binary.

The binary comes from $GREYSPF_BIN (default <repo>/build/greyspf). Every test
gets a fresh, world-traversable work directory under /tmp (the daemon drops
to `nobody`, which must reach its store, config and whitelist files).

Fixtures:
  workdir  - the test's directory (removed afterwards)
  daemon   - factory: daemon(greylist={...}, extra="...") -> started Daemon;
             every daemon still running at teardown gets SIGTERM and must
             exit 0
  spawn    - factory: spawn(conf_path) -> SpawnClient on
             `greyspf policy -c CONF`, must exit 0 on EOF

Daemon(listen=("inet", "inet6", "unix"), user="nobody" (None: root with
allow_root), top/store/greylist={option: value}, extra="[section]...")
writes NAME.conf (delay 1 s, auto_whitelist 0 unless given) and logs to
NAME.log. start() returns once every listener accepts and "serving" is
logged (the signal handlers are in place). Then: client(kind) ->
PolicyClient, msgs() (log messages without timestamps), wait_log(),
rewrite(...) + hup(), db(*args) (`greyspf db ... -c CONF`), stop() (exit
status), kill9().
"""

import os
import resource
import signal
import socket
import stat
import subprocess
import tempfile
import time
import shutil
from pathlib import Path

import pytest

from helpers import (BIN, PolicyClient, SpawnClient, free_port, has_ipv6,
                     write_config)


class Daemon:
    """One `greyspf serve` process with its generated config and log."""

    def __init__(self, workdir, listen=("inet",), user="nobody", top=None,
                 store=None, greylist=None, extra="", name="d",
                 nofile=None):
        self.workdir = Path(workdir)
        self.name = name
        self.conf = self.workdir / f"{name}.conf"
        self.logpath = self.workdir / f"{name}.log"
        self.store_path = self.workdir / f"{name}-store"
        self.port = None
        self.port6 = None
        self.sock = None
        parts = []
        for kind in listen:
            if kind == "inet":
                self.port = free_port()
                parts.append(f"inet:127.0.0.1:{self.port}")
            elif kind == "inet6":
                self.port6 = free_port(family=socket.AF_INET6)
                parts.append(f"inet:[::1]:{self.port6}")
            elif kind == "unix":
                self.sock = self.workdir / f"{name}.sock"
                parts.append(f"unix:{self.sock}")
            else:
                raise ValueError(kind)
        # Greylisting alone unless a test asks for SPF (the default is
        # "spf, greylist", which needs a DNS fixture).
        self.top = {"listen": ", ".join(parts), "log": "stderr",
                    "checks": "greylist"}
        if user is None:
            self.top["user"] = ""
            self.top["allow_root"] = "yes"
        else:
            self.top["user"] = user
        self.top.update(top or {})
        self.store = {"path": str(self.store_path)}
        self.store.update(store or {})
        self.greylist = {"delay": "1", "auto_whitelist": "0"}
        self.greylist.update(greylist or {})
        self.extra = extra
        self.nofile = nofile  # RLIMIT_NOFILE for the daemon, or None
        self.proc = None
        self.finished = False
        self.write()

    # -- configuration --------------------------------------------------
    def write(self):
        write_config(self.conf, self.top, self.store, self.greylist,
                     self.extra)

    def rewrite(self, greylist=None, extra=None, top=None, raw=None):
        """Changes the config file (for SIGHUP tests)."""
        if raw is not None:
            self.conf.write_text(raw)
            return
        if greylist:
            self.greylist.update(greylist)
        if top:
            self.top.update(top)
        if extra is not None:
            self.extra = extra
        self.write()

    # -- lifecycle ------------------------------------------------------
    def start(self, timeout=10.0):
        self.finished = False
        served = self.log().count(" serving (store ")
        self._logf = open(self.logpath, "ab")
        def limits(n=self.nofile):  # n: a limit, or (soft, hard)
            if n is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE,
                                   n if isinstance(n, tuple) else (n, n))

        self.proc = subprocess.Popen([BIN, "serve", "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf,
                                     preexec_fn=limits)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"greyspf serve exited {self.proc.returncode} at "
                    f"start:\n{self.log()}")
            # Bound listeners accept before the signal handlers are in
            # place; "serving" is logged once they are.
            if self._accepting() and (
                    self.top.get("log") != "stderr" or
                    self.log().count(" serving (store ") > served):
                return self
            if time.monotonic() > deadline:
                raise AssertionError("greyspf serve never accepted:\n"
                                     + self.log())
            time.sleep(0.02)

    def _accepting(self):
        targets = []
        if self.port:
            targets.append((socket.AF_INET, ("127.0.0.1", self.port)))
        if self.port6:
            targets.append((socket.AF_INET6, ("::1", self.port6)))
        if self.sock:
            targets.append((socket.AF_UNIX, str(self.sock)))
        for fam, addr in targets:
            s = socket.socket(fam, socket.SOCK_STREAM)
            try:
                s.connect(addr)
            except OSError:
                return False
            finally:
                s.close()
        return True

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def hup(self, expect="configuration reloaded", timeout=5.0):
        """SIGHUP, then waits for one more log line containing expect."""
        before = self.log().count(expect)
        self.signal(signal.SIGHUP)
        self.wait_log(expect, count=before + 1, timeout=timeout)
        # The store's whitelist is re-read on the next tick (200 ms).
        time.sleep(0.3)

    def stop(self, timeout=10.0):
        """SIGTERM; returns the exit status (asserted 0 by the fixture)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("greyspf did not stop on SIGTERM:\n"
                                 + self.log())
        self._logf.close()
        self.finished = True
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self._logf.close()
        self.finished = True

    # -- log ------------------------------------------------------------
    def log(self):
        try:
            return self.logpath.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def msgs(self):
        """Log messages without their timestamp and "greyspf: " prefix."""
        out = []
        for l in self.log().splitlines():
            i = l.find(" greyspf: ")
            out.append(l[i + len(" greyspf: "):] if i >= 0 else l)
        return out

    def log_lines(self, contains=""):
        return [l for l in self.log().splitlines() if contains in l]

    def wait_log(self, text, count=1, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.log().count(text) >= count:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"log never had {count} x {text!r}:\n{self.log()}")
            time.sleep(0.02)

    # -- clients --------------------------------------------------------
    def client(self, kind=None, timeout=5.0):
        if kind is None:
            kind = "inet" if self.port else ("unix" if self.sock else
                                             "inet6")
        if kind == "inet":
            s = socket.create_connection(("127.0.0.1", self.port), timeout)
        elif kind == "inet6":
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(("::1", self.port6))
        elif kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(str(self.sock))
        else:
            raise ValueError(kind)
        return PolicyClient(s)

    def db(self, *args, input=None, check=True):
        """Runs `greyspf db ARGS -c CONF`; returns the CompletedProcess."""
        return run_db(self.conf, *args, input=input, check=check)


def run_db(conf, *args, input=None, check=True):
    argv = [BIN, "db", args[0], "-c", str(conf), *args[1:]]
    r = subprocess.run(argv, input=input, capture_output=True, text=True,
                       timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} exited {r.returncode}:\n"
                             f"{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="greyspf-it-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(workdir):
    """Factory: daemon(**kw) creates and starts a Daemon (start=False to
    only create it). At teardown every running one must exit 0 on
    SIGTERM."""
    made = []

    def make(start=True, **kw):
        kw.setdefault("name", f"d{len(made)}")
        d = Daemon(workdir, **kw)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    failures = []
    for d in made:
        if d.proc is None or d.finished:
            continue  # never started, or stopped/killed by the test
        rc = d.stop()
        if rc != 0:
            failures.append(f"{d.name}: exit status {rc}\n{d.log()}")
    assert not failures, "\n".join(failures)


@pytest.fixture
def spawn():
    made = []

    def make(conf):
        c = SpawnClient([BIN, "policy", "-c", str(conf)])
        made.append(c)
        return c

    yield make
    failures = []
    for c in made:
        rc = c.close()
        if rc != 0:
            failures.append(f"greyspf policy exited {rc}: {c.stderr()}")
    assert not failures, "\n".join(failures)


def pytest_report_header(config):
    return f"greyspf binary: {BIN}"


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    if not os.access(BIN, os.X_OK):
        pytest.exit(f"no greyspf binary at {BIN} (set GREYSPF_BIN)", 2)


def ipv6_available():
    return has_ipv6()


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)
