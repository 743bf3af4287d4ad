"""Greylisting through a real Postfix, in each of the three modes of
doc/postfix.md (inet, unix socket, spawn): SMTP replies as swaks sees them,
headers of the delivered files, and Postfix's behaviour without greyspf."""

import os
import pwd
import re
import stat
import subprocess
import time

import pytest

import pfharness as h
from pfenv import GREYLIST_DELAY, kill_spawned, spawned_pids, wait_until

# Slack after the greylist delay before the retry: greyspf compares whole
# seconds, so a retry at delay + this is surely late enough.
RETRY_SLACK = 1.2


def rcpt_codes(session):
    return [(r.code, r.enhanced) for r in session.rcpt]


def assert_greylisted(session, n):
    assert rcpt_codes(session) == [("450", "4.7.1")] * n, session
    for r in session.rcpt:
        assert "Greylisted" in r.text, session
    assert session.data_end is None, session


def test_greylist_cycle(env):
    """New triplet 450 4.7.1; retry before the delay 450; retry after the
    delay 250 and delivered, with exactly one X-Greylist header in each copy
    although the message has three recipients."""
    client = env.client()
    tag = f"{env.mode}-cycle"
    sender = f"alice.{tag}@sender.example.net"
    rcpts = [f"{u}.{tag}@{h.RCPT_DOMAIN}" for u in ("bob", "carol", "dave")]

    t0 = time.monotonic()
    first = env.send(client, sender, rcpts, f"{tag} first")
    assert_greylisted(first, 3)

    again = env.send(client, sender, rcpts, f"{tag} again")
    assert time.monotonic() - t0 < GREYLIST_DELAY, "too slow to test 'early'"
    assert_greylisted(again, 3)

    wait_until(t0 + GREYLIST_DELAY + RETRY_SLACK)
    late = env.send(client, sender, rcpts, f"{tag} late")
    assert rcpt_codes(late) == [("250", "2.1.5")] * 3, late
    assert late.data_end is not None and late.data_end.code == "250", late
    assert late.data_end.enhanced == "2.0.0", late

    copies = env.pf.delivered(f"{tag} late", count=3)
    assert len(copies) == 3
    got = sorted(h.header_values(c, "Delivered-To")[0] for c in copies)
    assert got == sorted(rcpts)
    for c in copies:
        xg = h.header_values(c, "X-Greylist")
        assert len(xg) == 1, c
        assert re.match(r"delayed \d+ seconds", xg[0]), xg
    assert env.pf.delivered_now(f"{tag} first") == []
    assert env.pf.delivered_now(f"{tag} again") == []


def test_other_recipient_is_a_new_triplet(env):
    """Passing one triplet does not pass another recipient (auto-whitelist
    needs 5 passes by default)."""
    client = env.client()
    tag = f"{env.mode}-other"
    sender = f"erin.{tag}@sender.example.net"
    t0 = time.monotonic()
    assert_greylisted(env.send(client, sender, [f"a.{tag}@{h.RCPT_DOMAIN}"],
                               f"{tag} 1"), 1)
    wait_until(t0 + GREYLIST_DELAY + RETRY_SLACK)
    s = env.send(client, sender, [f"a.{tag}@{h.RCPT_DOMAIN}",
                                  f"b.{tag}@{h.RCPT_DOMAIN}"], f"{tag} 2")
    assert rcpt_codes(s) == [("250", "2.1.5"), ("450", "4.7.1")], s
    assert s.data_end is not None and s.data_end.code == "250", s
    (copy,) = env.pf.delivered(f"{tag} 2", count=1)
    assert h.header_values(copy, "Delivered-To") == [f"a.{tag}@{h.RCPT_DOMAIN}"]


def greyspf_absent_marks(env):
    """Log lines by which Postfix shows it could not use greyspf."""
    if env.mode == "inet":
        return [f"connect to 127.0.0.1:{env.gport}: Connection refused",
                f"problem talking to server 127.0.0.1:{env.gport}"]
    if env.mode == "spawn":
        return [f"command {h.greyspf_bin()} exit status 1",
                "problem talking to server private/greyspf"]
    # The socket file may stay behind (greyspf, no longer root, cannot
    # remove it from private/) or be gone.
    return [re.compile(r"connect to private/greyspf: (Connection refused|"
                       r"No such file or directory)"),
            "problem talking to server private/greyspf"]


def test_greyspf_down_default_action(env):
    """greyspf unavailable: Postfix applies default_action=DUNNO from the
    guide (mail accepted, not greylisted) and logs the failure; with greyspf
    back, greylisting resumes."""
    tag = f"{env.mode}-down"
    mark = env.pf.log_mark()
    if env.mode == "spawn":
        # No daemon to stop: spawn(8) starts greyspf per connection. Make
        # it unable to start (broken configuration) and end the running
        # ones, so the next connection from smtpd gets a failing greyspf.
        good = env.gs.conf.read_text()
        env.gs.write_config("this is not a greyspf configuration\n")
        kill_spawned(env.gs.conf)
        h.wait_for(lambda: not spawned_pids(env.gs.conf), 10,
                   "spawned greyspf to exit")
    else:
        env.gs.stop()
    try:
        client = env.client()
        rcpt = f"frank.{tag}@{h.RCPT_DOMAIN}"
        s = env.send(client, f"gina.{tag}@sender.example.net", [rcpt],
                     f"{tag} while down")
        assert rcpt_codes(s) == [("250", "2.1.5")], s
        assert s.data_end is not None and s.data_end.code == "250", s
        (copy,) = env.pf.delivered(f"{tag} while down")
        assert h.header_values(copy, "X-Greylist") == []
        log = env.pf.log_since(mark)
        for mark in greyspf_absent_marks(env):
            if isinstance(mark, str):
                assert mark in log, log
            else:
                assert mark.search(log), log
    finally:
        if env.mode == "spawn":
            env.gs.write_config(good)
        else:
            env.start_daemon()

    # Back: a new triplet is greylisted again.
    s = env.send(env.client(), f"hank.{tag}@sender.example.net",
                 [f"ivy.{tag}@{h.RCPT_DOMAIN}"], f"{tag} back")
    assert_greylisted(s, 1)


def test_backup_mx_not_greylisted(env):
    """The guide's backup-MX override (checks off for that client) lets its
    mail through at once, without an X-Greylist header."""
    tag = f"{env.mode}-backupmx"
    s = env.send(h.TEST_BACKUP_MX, f"nick.{tag}@sender.example.net",
                 [f"olga.{tag}@{h.RCPT_DOMAIN}"], tag)
    assert rcpt_codes(s) == [("250", "2.1.5")], s
    assert s.data_end is not None and s.data_end.code == "250", s
    (copy,) = env.pf.delivered(tag)
    assert h.header_values(copy, "X-Greylist") == []


def test_store_belongs_to_greyspf_user(env):
    """The greyspf processes (daemon after dropping root, or spawned with
    user=greyspf) wrote the store as the dedicated user."""
    files = [p for p in env.gs.store.iterdir() if p.is_file()]
    assert files, "greyspf created no store files"
    uid = pwd.getpwnam(h.DAEMON_USER).pw_uid
    for p in files:
        assert p.stat().st_uid == uid, p


@pytest.mark.modes("unix")
def test_unix_socket_permissions(env):
    """The socket is where main.cf's unix:private/greyspf points, with the
    guide's socket_owner/socket_group/socket_mode, and the daemon no longer
    runs as root."""
    st = os.stat(env.socket)
    assert stat.S_ISSOCK(st.st_mode)
    pf = pwd.getpwnam("postfix")
    assert (st.st_uid, st.st_gid) == (pf.pw_uid, pf.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o660
    status = open(f"/proc/{env.gs.proc.pid}/status").read()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    assert set(uids) == {str(pwd.getpwnam(h.DAEMON_USER).pw_uid)}


@pytest.mark.modes("spawn")
def test_spawn_runs_as_greyspf_user(env):
    """spawn(8) started greyspf policy processes as user=greyspf."""
    s = env.send(env.client(), "kim.spawnuser@sender.example.net",
                 [f"lee.spawnuser@{h.RCPT_DOMAIN}"], "spawnuser")
    assert_greylisted(s, 1)
    pids = spawned_pids(env.gs.conf)
    assert pids, "no greyspf policy process alive after a session"
    uid = str(pwd.getpwnam(h.DAEMON_USER).pw_uid)
    for pid in pids:
        status = open(f"/proc/{pid}/status").read()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        assert set(uids) == {uid}


def test_postconf_accepts_guide(env):
    """Postfix finds nothing to warn about in the guide's settings (a
    misspelt parameter would be an "unused parameter" warning)."""
    p = subprocess.run(["postconf", "-c", str(env.pf.etc), "-n"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr, p.stderr
    p = subprocess.run(["postconf", "-c", str(env.pf.etc), "-M"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    assert "warning" not in p.stderr, p.stderr


@pytest.mark.modes("spawn")
def test_spawn_processes_share_the_store(env):
    """A triplet first seen by one spawned greyspf passes in another: the
    first process is killed (SIGKILL, as spawn's time limit does) between
    the attempts, so the retry is answered by a fresh process."""
    client = env.client()
    tag = "spawn-shared"
    sender = f"paul.{tag}@sender.example.net"
    rcpt = [f"quinn.{tag}@{h.RCPT_DOMAIN}"]
    t0 = time.monotonic()
    assert_greylisted(env.send(client, sender, rcpt, f"{tag} 1"), 1)
    first = set(spawned_pids(env.gs.conf))
    assert first
    kill_spawned(env.gs.conf)
    h.wait_for(lambda: not (set(spawned_pids(env.gs.conf)) & first), 10,
               "the first greyspf policy processes to die")
    wait_until(t0 + GREYLIST_DELAY + RETRY_SLACK)
    s = env.send(client, sender, rcpt, f"{tag} 2")
    assert rcpt_codes(s) == [("250", "2.1.5")], s
    assert not (set(spawned_pids(env.gs.conf)) & first)
    (copy,) = env.pf.delivered(f"{tag} 2")
    assert len(h.header_values(copy, "X-Greylist")) == 1
