"""pfharness - a private Postfix instance, greyspf and swaks for the
end-to-end tests in tests/postfix/ and for bench/smtp-throughput.sh.

Everything lives under one temporary folder (mode 0755 so that the postfix,
nobody and greyspf users can traverse it):

    etc/     config_directory: main.cf, master.cf (`postfix -c etc start`)
    queue/   queue_directory (private/greyspf is the unix-mode socket)
    data/    data_directory
    mail/    virtual_mailbox_base: every delivered message is one file in
             the Maildir mail/inbox/new/ (virtual(8), mailbox owned by nobody)
    log/     maillog_file (listed in maillog_file_prefixes), greyspf stderr
    greyspf/ greyspf.conf and the LMDB store (owned by the greyspf user)

The system Postfix instance (/etc/postfix, /var/spool/postfix) is never
touched: every postfix command gets `-c <tmp>/etc`.

The greyspf parts of main.cf, master.cf and greyspf.conf are read from the
fenced blocks of doc/postfix.md (see `doc_snippets`), so the guide and the
tests cannot drift apart. Only the installed paths, the port and the
example backup-MX address in them are replaced by this instance's values
(DOC_* constants below).
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "doc" / "postfix.md"

# The values the guide uses; the harness substitutes its own for them.
DOC_PORT = "10023"
DOC_BIN = "/usr/sbin/greyspf"
DOC_CONF = "/etc/greyspf/greyspf.conf"
DOC_QUEUE = "/var/spool/postfix"
DOC_BACKUP_MX = "192.0.2.25"
# The loopback address that plays the guide's backup MX in the tests.
TEST_BACKUP_MX = "127.0.250.25"

# A fenced block of the guide whose first line is "# greyspf-doc: NAME" is
# the snippet NAME.
SNIPPET_MARK = re.compile(r"^#\s*greyspf-doc:\s*(\S+)\s*$")

# The recipient domain the instance delivers (virtual(8) mailbox domain).
RCPT_DOMAIN = "example.org"
# mynetworks: a loopback address no test uses, so test clients are not
# trusted and permit_mynetworks does not short-cut the policy check.
TRUSTED_NET = "127.255.255.254/32"
# Unprivileged owner of the delivered mail (virtual_minimum_uid is 100).
MAIL_USER = "nobody"
# The dedicated user greyspf runs as (as scripts/install-deps.sh creates).
DAEMON_USER = "greyspf"

# Seconds to wait for a daemon to listen, for Postfix to start or stop, for
# delivery of an accepted message; generous for a loaded CI machine.
START_TIMEOUT = 15
DELIVERY_TIMEOUT = 20
# swaks gives up on a server silent for this long after a command. Normal
# replies take at most a few seconds (a greyspf that is down costs
# try_limit - 1 retry delays of 1s); a hung greyspf would keep Postfix
# waiting smtpd_policy_service_timeout (100s) per try, so the test fails
# after this with swaks' transcript instead.
SWAKS_TIMEOUT = 30


def greyspf_bin():
    """The greyspf binary under test: $GREYSPF_BIN or build/greyspf."""
    return os.path.abspath(os.environ.get("GREYSPF_BIN",
                                          str(REPO / "build" / "greyspf")))


def doc_snippets(path=DOC):
    """Returns {name: text} for every marked fenced block of the guide."""
    snippets = {}
    fence = None
    body = []
    for line in Path(path).read_text().splitlines():
        if fence is None:
            m = re.match(r"^(```+|~~~+)", line)
            if m:
                fence = m.group(1)
                body = []
            continue
        if line.startswith(fence):
            if body:
                m = SNIPPET_MARK.match(body[0])
                if m:
                    if m.group(1) in snippets:
                        raise ValueError(f"{path}: snippet {m.group(1)} twice")
                    snippets[m.group(1)] = "\n".join(body) + "\n"
            fence = None
            continue
        body.append(line)
    return snippets


def sanitized(binary):
    """True for a build with AddressSanitizer (-DGREYSPF_SANITIZE=ON)."""
    try:
        out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "libasan" in out


def sanitizer_env(report_dir):
    """ASAN/UBSAN options sending every report to a file in report_dir."""
    return {"ASAN_OPTIONS": f"log_path={report_dir}/asan:detect_leaks=1",
            "UBSAN_OPTIONS": f"log_path={report_dir}/ubsan:"
                             "print_stacktrace=1"}


def free_port():
    """A TCP port free on 127.0.0.1 now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def can_connect(family, addr):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(addr)
        return True
    except OSError:
        return False


def ensure_user(name):
    """Creates a system user like scripts/install-deps.sh does, if missing."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--home-dir", "/var/lib/" + name,
                        "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], check=True)
    return pwd.getpwnam(name)


# ---------------------------------------------------------------- swaks

class SmtpReply:
    """One SMTP reply: code ("450"), enhanced code ("4.7.1") and text."""

    def __init__(self, lines):
        self.lines = lines
        last = lines[-1] if lines else ""
        self.code = last[:3]
        m = re.match(r"^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b", last)
        self.enhanced = m.group(1) if m else ""
        self.text = " ".join(ln[4:] for ln in lines)

    def __repr__(self):
        return f"SmtpReply({self.text!r})"


class SmtpSession:
    """What swaks saw: the reply to each command it sent. The end of the
    message body is the command "." (swaks shows the body as sent lines)."""

    def __init__(self, argv, rc, transcript):
        self.argv = argv
        self.rc = rc
        self.transcript = transcript
        self.steps = []  # [(last line sent before the reply, SmtpReply)]
        cmd, lines = "<connect>", []
        for raw in transcript.splitlines():
            if raw.startswith(("<- ", "<** ")):
                lines.append(raw.split(" ", 1)[1].lstrip())
                if re.match(r"^\d{3}( |$)", lines[-1]):
                    self.steps.append((cmd, SmtpReply(lines)))
                    lines = []
            elif raw.startswith(" -> "):
                cmd = raw[4:].strip()

    def replies(self, command):
        """Replies to the commands starting with `command` ("RCPT TO")."""
        return [r for c, r in self.steps if c.upper().startswith(command)]

    @property
    def rcpt(self):
        return self.replies("RCPT TO")

    @property
    def data_end(self):
        """The reply to the end of the message ("250 ... queued as"), or
        None when swaks did not get that far."""
        r = self.replies(".")
        return r[-1] if r else None

    def __repr__(self):
        return "swaks transcript:\n" + self.transcript


def swaks(port, client, sender, rcpts, subject, server="127.0.0.1",
          headers=()):
    """Sends one message with swaks from loopback address `client`."""
    argv = ["swaks", "--server", server, "--port", str(port),
            "--local-interface", client, "--helo", "client.example.net",
            "--from", sender, "--to", ",".join(rcpts),
            "--header", f"Subject: {subject}", "--timeout", str(SWAKS_TIMEOUT)]
    for h in headers:
        argv += ["--add-header", h]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=SWAKS_TIMEOUT * 3)
    return SmtpSession(argv, p.returncode, p.stdout)


# ---------------------------------------------------------------- Postfix

MASTER_BASE = """\
# Private test instance: nothing chrooted, SMTP on one loopback port.
{smtp_listen} inet  n       -       n       -       -       smtpd
{extra_listen}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_BASE = """\
# Private test instance of greyspf's Postfix tests (tests/postfix/).
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.greyspf.test
mydomain = greyspf.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = {trusted}
alias_maps =
alias_database =
smtpd_banner = $myhostname ESMTP
biff = no
# No DNS in the test sandbox: do not look up client names.
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{mail_uid}
virtual_gid_maps = static:{mail_gid}
maillog_file = {root}/log/postfix.log
maillog_file_prefixes = {root}/log
# Delivery goes on at once; no waiting for the queue manager's timers.
queue_run_delay = 1s
minimal_backoff_time = 1s
"""


class Postfix:
    """A private Postfix instance under its own temporary folder.

    main_extra / master_extra: text appended to main.cf / master.cf (the
    guide's snippets). extra_listen: further master.cf smtpd lines (the
    benchmark's listener without the policy check).
    """

    def __init__(self, root, main_extra="", master_extra="", port=None,
                 extra_listen="", main_tail=""):
        self.root = Path(root)
        self.port = port or free_port()
        self.etc = self.root / "etc"
        self.queue = self.root / "queue"
        self.mail = self.root / "mail"
        self.log = self.root / "log" / "postfix.log"
        self.main_extra = main_extra
        self.master_extra = master_extra
        self.extra_listen = extra_listen
        self.main_tail = main_tail
        self.running = False

    def _postfix(self, *args, check=True):
        p = subprocess.run(["postfix", "-c", str(self.etc), *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)}: {p.stdout}\n"
                               f"{self.log_text()}")
        return p

    def write_config(self):
        mail = pwd.getpwnam(MAIL_USER)
        for d in (self.etc, self.queue, self.root / "data", self.mail,
                  self.root / "log"):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chown(self.mail, mail.pw_uid, mail.pw_gid)
        owner = pwd.getpwnam("postfix")
        os.chown(self.root / "data", owner.pw_uid, owner.pw_gid)
        main = MAIN_BASE.format(root=self.root, trusted=TRUSTED_NET,
                                domain=RCPT_DOMAIN, mail_uid=mail.pw_uid,
                                mail_gid=mail.pw_gid)
        (self.etc / "main.cf").write_text(
            main + "\n" + self.main_extra + "\n" + self.main_tail)
        (self.etc / "master.cf").write_text(
            MASTER_BASE.format(smtp_listen=f"127.0.0.1:{self.port}",
                               extra_listen=self.extra_listen)
            + "\n" + self.master_extra)

    def start(self):
        self.write_config()
        self._postfix("check")
        self._postfix("start")
        self.running = True
        wait_for(lambda: can_connect(socket.AF_INET, ("127.0.0.1", self.port)),
                 START_TIMEOUT, f"Postfix on port {self.port}")

    def stop(self):
        if not self.running:
            return
        self.running = False
        p = self._postfix("stop", check=False)
        if p.returncode != 0:
            self._postfix("abort", check=False)
        pidfile = self.queue / "pid" / "master.pid"
        try:
            wait_for(lambda: not pidfile.exists() or not _alive(pidfile),
                     START_TIMEOUT, "Postfix master to exit")
        except TimeoutError:
            pass

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """Position in the log; pass it to log_since."""
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, mark):
        with open(self.log, "rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def delivered(self, subject, count=1, timeout=DELIVERY_TIMEOUT):
        """Waits for `count` delivered copies of the message with this
        Subject and returns their texts (one per recipient)."""
        new = self.mail / "inbox" / "new"

        def found():
            if not new.is_dir():
                return None
            texts = []
            for f in sorted(new.iterdir()):
                t = f.read_text(errors="replace")
                if re.search(rf"^Subject: {re.escape(subject)}$", t, re.M):
                    texts.append(t)
            return texts if len(texts) >= count else None

        return wait_for(found, timeout, f"{count} delivered '{subject}'")

    def delivered_now(self, subject):
        """Delivered copies with this Subject, without waiting."""
        new = self.mail / "inbox" / "new"
        if not new.is_dir():
            return []
        return [f.read_text(errors="replace") for f in sorted(new.iterdir())
                if re.search(rf"^Subject: {re.escape(subject)}$",
                             f.read_text(errors="replace"), re.M)]


def _alive(pidfile):
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
        return True
    except (OSError, ValueError, IndexError):
        return False


def headers_of(message):
    """The header block of a delivered message, unfolded, as a list of
    (name, value)."""
    head = message.split("\n\n", 1)[0]
    out = []
    for line in head.splitlines():
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        elif ":" in line:
            name, value = line.split(":", 1)
            out.append((name, value.strip()))
    return out


def header_values(message, name):
    return [v for n, v in headers_of(message) if n.lower() == name.lower()]


# ---------------------------------------------------------------- greyspf

class Greyspf:
    """greyspf's configuration under <root>/greyspf and, for the inet and
    unix modes, the daemon (`greyspf serve`) as a child process.

    head: the daemon-wide part of greyspf.conf (the guide's snippet, paths
    substituted); tail: the test's own sections ([store], [greylist] ...).
    """

    def __init__(self, root, head, tail):
        self.dir = Path(root) / "greyspf"
        self.conf = self.dir / "greyspf.conf"
        self.store = self.dir / "store"
        self.errlog = Path(root) / "log" / "greyspf.log"
        self.head = head
        self.tail = tail
        self.proc = None
        self.env = {}  # extra environment of the daemon (sanitizer options)
        self.user = ensure_user(DAEMON_USER)

    def write_config(self, text=None):
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.store.mkdir(exist_ok=True)
        os.chown(self.store, self.user.pw_uid, self.user.pw_gid)
        if text is None:
            text = self.head + "\n" + self.tail.format(store=self.store)
        self.conf.write_text(text)
        os.chmod(self.conf, 0o644)

    def check_config(self):
        p = subprocess.run([greyspf_bin(), "config", "-c", str(self.conf)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"greyspf config: {p.stdout}")
        return p.stdout

    def start(self, ready):
        """Runs `greyspf serve`; ready() says when it listens."""
        self.errlog.parent.mkdir(parents=True, exist_ok=True)
        err = open(self.errlog, "ab")
        self.proc = subprocess.Popen([greyspf_bin(), "serve", "-c",
                                      str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=err,
                                     env={**os.environ, **self.env})
        err.close()

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"greyspf exited {self.proc.returncode}: "
                                   f"{self.errlog.read_text()}")
            return ready()

        wait_for(up, START_TIMEOUT, "greyspf to listen")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None


def make_root(prefix, base="/tmp"):
    """A new folder for one instance, traversable by every user."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.chmod(root, 0o755)
    return root


def remove_root(root):
    shutil.rmtree(root, ignore_errors=True)
