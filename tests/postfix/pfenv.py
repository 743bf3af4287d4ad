"""pfenv - one Postfix + greyspf set-up of the end-to-end tests, wired as
doc/postfix.md says for a mode (inet, unix, spawn), and its helpers."""

import itertools
import os
import signal
import socket
import time
from pathlib import Path

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

# Seconds for spawned greyspf processes to exit once Postfix stopped.
SPAWN_EXIT = 5

# Daemon-wide keys the tests add before the guide's: the daemon's log goes
# to a file the tests keep (greyspf.log next to Postfix's log).
TEST_HEAD = "log = stderr\n" + ("debug = yes\n" if os.environ.get(
    "GREYSPF_PF_DEBUG") else "")


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
                    .replace(h.DOC_QUEUE, str(self.pf.queue))
                    .replace(h.DOC_BACKUP_MX, h.TEST_BACKUP_MX))

        self.subst = subst
        self.gs = h.Greyspf(root, gs_head_extra +
                            subst(snippets[f"greyspf.conf-{mode}"]),
                            gs_tail + "\n" +
                            subst(snippets["greyspf.conf-backup-mx"]))
        self.pf.main_extra = (subst(snippets[f"main.cf-{mode}"]) + "\n" +
                              subst(snippets["main.cf-policy"]))
        if mode == "spawn":
            self.pf.master_extra = subst(snippets["master.cf-spawn"])
        self.socket = self.pf.queue / "private" / "greyspf"
        self._net = itertools.count(1)
        # A sanitizer build writes its reports to files here, from the
        # daemon and from spawned processes alike (spawn(8) passes only
        # export_environment, and stderr is the socket to Postfix).
        self.sanitizer_dir = root / "log" / "sanitizer"
        if h.sanitized(h.greyspf_bin()):
            opts = h.sanitizer_env(self.sanitizer_dir)
            self.gs.env = opts
            self.pf.main_extra += "\nexport_environment = TZ MAIL_CONFIG LANG " \
                + " ".join(f"{k}={v}" for k, v in opts.items()) + "\n"

    # -- life cycle -----------------------------------------------------
    def start(self):
        if self.gs.env:
            self.sanitizer_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.sanitizer_dir, 0o1777)
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
        if self.mode == "inet":
            self.gs.start(lambda: h.can_connect(
                socket.AF_INET, ("127.0.0.1", self.gport)))
        else:
            self.gs.start(lambda: h.can_connect(socket.AF_UNIX,
                                                str(self.socket)))

    def stop(self):
        self.pf.stop()
        self.gs.stop()
        # Spawned processes end on EOF once smtpd has gone; give them the
        # time to (exit and) write any leak report before the SIGKILL.
        try:
            h.wait_for(lambda: not spawned_pids(self.gs.conf), SPAWN_EXIT,
                       "spawned greyspf to exit")
        except TimeoutError:
            pass
        kill_spawned(self.gs.conf)

    def sanitizer_reports(self):
        """Texts of the sanitizer reports written so far."""
        if not self.sanitizer_dir.is_dir():
            return []
        return [f.read_text(errors="replace")
                for f in sorted(self.sanitizer_dir.iterdir())]

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
    """SIGKILL, as spawn(8) does at its time limit: the store must survive
    a greyspf policy process killed at any moment."""
    for pid in spawned_pids(conf):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)
