"""Fixtures of the Postfix end-to-end tests.

`pf_mode` (module scope, parametrised inet / unix / spawn): a private
Postfix instance wired to greyspf exactly as doc/postfix.md says for that
mode, with greyspf's greylisting at delay = 2s. See pfharness.py for the
instance's layout.

Run (as root; postfix and swaks installed):
    GREYSPF_BIN=build/greyspf /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/postfix
"""

import itertools
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

import pfharness as h

MODES = ("inet", "unix", "spawn")

# greyspf's test settings that are not in the guide (the guide keeps
# greyspf's defaults): the store under the instance, a 2-second delay and
# the X-Greylist header.
GREYLIST_DELAY = 2
GREYLIST_TAIL = f"""
[store]
backend = lmdb
path = {{store}}

[greylist]
delay = {GREYLIST_DELAY}s
header = yes
"""

# Daemon-wide keys the tests add before the guide's: the daemon's log goes
# to a file the tests keep (greyspf.log next to Postfix's log).
TEST_HEAD = "log = stderr\n"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "modes(*names): run only in these pf_mode modes")


def _preflight():
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (Postfix's master and spawn(8) "
                        "need it)")
    for tool in ("postfix", "swaks", "smtp-source"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            problems.append(f"{tool} not installed (apt-get install postfix "
                            "swaks)")
    if not os.access(h.greyspf_bin(), os.X_OK):
        problems.append(f"no greyspf binary at {h.greyspf_bin()} (set "
                        "GREYSPF_BIN)")
    return problems


@pytest.fixture(scope="session", autouse=True)
def preflight():
    problems = _preflight()
    if problems:
        pytest.fail("Postfix tests cannot run: " + "; ".join(problems),
                    pytrace=False)


@pytest.fixture(scope="session")
def snippets():
    return h.doc_snippets()


class Env:
    """One mode's Postfix + greyspf, and helpers for the scenarios."""

    def __init__(self, mode, root, snippets, gs_head_extra=TEST_HEAD,
                 gs_tail=GREYLIST_TAIL, extra_listen=""):
        self.mode = mode
        self.root = root
        self.gport = h.free_port()
        self.pf = h.Postfix(root, extra_listen=extra_listen)
        conf_path = root / "greyspf" / "greyspf.conf"

        def subst(text):
            return (text.replace(h.DOC_PORT, str(self.gport))
                    .replace(h.DOC_BIN, h.greyspf_bin())
                    .replace(h.DOC_CONF, str(conf_path))
                    .replace(h.DOC_QUEUE, str(self.pf.queue)))

        self.subst = subst
        self.gs = h.Greyspf(root, gs_head_extra +
                            subst(snippets[f"greyspf.conf-{mode}"]), gs_tail)
        self.pf.main_extra = (subst(snippets[f"main.cf-{mode}"]) + "\n" +
                              subst(snippets["main.cf-policy"]))
        if mode == "spawn":
            self.pf.master_extra = subst(snippets["master.cf-spawn"])
        self.socket = self.pf.queue / "private" / "greyspf"
        self._net = itertools.count(1)

    # -- life cycle -----------------------------------------------------
    def start(self):
        self.gs.write_config()
        self.gs.check_config()
        if self.mode == "inet":
            self.start_daemon()
            self.pf.start()
        else:
            # private/ is created by `postfix start`; greyspf binds in it.
            self.pf.start()
            if self.mode == "unix":
                self.start_daemon()

    def start_daemon(self):
        import socket
        if self.mode == "inet":
            self.gs.start(lambda: h.can_connect(
                socket.AF_INET, ("127.0.0.1", self.gport)))
        else:
            self.gs.start(lambda: h.can_connect(socket.AF_UNIX,
                                                str(self.socket)))

    def stop(self):
        self.pf.stop()
        self.gs.stop()
        kill_spawned(self.gs.conf)

    # -- scenario helpers ----------------------------------------------
    def client(self):
        """A loopback client address in a /24 of its own, so that each
        scenario is its own greylist client network."""
        n = next(self._net)
        return f"127.0.{n}.{10 + n % 200}"

    def send(self, client, sender, rcpts, subject):
        return h.swaks(self.pf.port, client, sender, rcpts, subject)

    def diagnostics(self):
        out = ["--- Postfix log (tail) ---", self.pf.log_text()[-6000:]]
        try:
            out += ["--- greyspf log (tail) ---",
                    self.gs.errlog.read_text(errors="replace")[-3000:]]
        except FileNotFoundError:
            pass
        return "\n".join(out)


def spawned_pids(conf):
    """PIDs of `greyspf policy -c CONF` processes (started by this test's
    Postfix instance through spawn(8)): matched on the exact config path."""
    pids = []
    want = str(conf).encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 4 and argv[1] == b"policy" and want in argv:
            pids.append(int(d.name))
    return pids


def kill_spawned(conf):
    """SIGKILL, as spawn(8) does at its time limit: greyspf policy must
    survive that (atomic store updates). (SIGTERM does not end a `greyspf
    policy` whose connection is idle, as of this writing.)"""
    for pid in spawned_pids(conf):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module", params=MODES)
def pf_mode(request, snippets):
    root = h.make_root(f"greyspf-pf-{request.param}-")
    env = Env(request.param, root, snippets)
    try:
        env.start()
    except Exception:
        env.stop()
        raise
    yield env
    env.stop()
    if os.environ.get("GREYSPF_PF_KEEP"):
        print(f"kept {root}")
    else:
        h.remove_root(root)


@pytest.fixture
def env(request, pf_mode):
    """pf_mode, skipping nothing: tests marked modes(...) simply do not
    apply to other modes (see pytest_collection_modifyitems)."""
    yield pf_mode
    if getattr(request.node, "rep_call_failed", False):
        print(pf_mode.diagnostics())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call_failed = rep.failed


def pytest_collection_modifyitems(config, items):
    """A test marked modes("inet", "unix") is only collected for those
    pf_mode parameters (deselected elsewhere, not skipped)."""
    keep, drop = [], []
    for item in items:
        m = item.get_closest_marker("modes")
        cs = getattr(item, "callspec", None)
        mode = cs.params.get("pf_mode") if cs else None
        if m and mode is not None and mode not in m.args:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def wait_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)
