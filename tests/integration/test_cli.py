"""`greyspf config` and `greyspf db` against real files and stores."""

import json
import os
import pwd
import subprocess
import time

import pytest

from conftest import run_db
from helpers import BIN, REPO, req, retry

DEFER1 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"


def config(path):
    return subprocess.run([BIN, "config", "-c", str(path)],
                          capture_output=True, text=True, timeout=10)


def test_config_prints_every_option(workdir):
    f = workdir / "g.conf"
    f.write_text("listen = unix:/tmp/x.sock\nuser = nobody\nlog = stderr\n"
                 "[greylist]\ndelay = 2m\nauto_whitelist = 3\n"
                 "[client 198.51.100.0/24]\ndelay = 30\n")
    r = config(f)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"# {f}"
    for want in ("listen = unix:/tmp/x.sock", "user = nobody",
                 "log = stderr", "socket_mode = 0660", "allow_root = no",
                 "[store]", "backend = lmdb", "[greylist]",
                 "delay = 2m", "auto_whitelist = 3", "retry_window = 2d",
                 "ipv4_prefix = 24", "ipv6_prefix = 64", "header = no",
                 "learning = no", "recipient_delimiter = +"):
        assert want in lines, (want, r.stdout)


def test_config_example_file_is_valid():
    r = config(REPO / "packaging" / "greyspf.conf")
    assert r.returncode == 0, r.stderr
    assert "header = yes" in r.stdout.splitlines()


@pytest.mark.parametrize("body,line,msg", [
    ("[greylist]\ndelay = banana\n", 5,
     'delay: "banana" is not a duration from 0s to 86400s '
     "(e.g. 300, 5m, 2h, 2d)"),
    ("bogus = 1\n", 4, 'unknown option "bogus"'),
])
def test_config_invalid_exits_1_with_file_line(workdir, body, line, msg):
    f = workdir / "bad.conf"
    f.write_text("# comment\nuser = nobody\nlog = stderr\n" + body)
    r = config(f)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == f"{f}:{line}: {msg}\n"


def test_config_invalid_values(workdir):
    """Every one of these must be refused with FILE:LINE."""
    bad = ["[greylist]\nipv4_prefix = 33\n",
           "[greylist]\nipv6_prefix = 129\n",
           "[greylist]\nauto_whitelist = -1\n",
           "[greylist]\nlearning = perhaps\n",
           "checks = greylist, bogus\n",
           "listen = tcp:127.0.0.1:1\n",
           "socket_mode = 999\n",
           "log = file\n",
           "[nosuchsection]\nx = 1\n",
           "[client not-a-network]\ndelay = 1\n"]
    for body in bad:
        f = workdir / "bad.conf"
        f.write_text("user = nobody\n" + body)
        r = config(f)
        assert r.returncode == 1, (body, r.stdout)
        assert r.stderr.startswith(f"{f}:"), (body, r.stderr)


@pytest.mark.parametrize("body", [
    "[greylist]\ndelay = 10m\nretry_window = 5m\n",
    "[greylist]\nretry_window = 2d\nmax_age = 1d\n",
    "[greylist]\ndelay = 1h\n[client 192.0.2.0/24]\nretry_window = 30m\n",
])
def test_config_refuses_timers_that_never_pass(workdir, body):
    f = workdir / "bad.conf"
    f.write_text("user = nobody\n" + body)
    r = config(f)
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith(f"{f}:")


def test_config_whitelist_errors(workdir):
    wl = workdir / "wl.txt"
    wl.write_text("192.0.2.1\n/^(unclosed/\n")
    f = workdir / "c.conf"
    f.write_text(f"user = nobody\n[greylist]\nwhitelist_clients = {wl}\n")
    r = config(f)
    assert r.returncode == 1
    assert r.stderr.startswith(f"{wl}:2: bad regex /^(unclosed/"), r.stderr
    f.write_text("user = nobody\n[greylist]\n"
                 f"whitelist_recipients = {workdir}/missing.txt\n")
    r = config(f)
    assert r.returncode == 1
    assert r.stderr.startswith(f"{workdir}/missing.txt:"), r.stderr


def test_config_missing_file(workdir):
    r = config(workdir / "nope.conf")
    assert r.returncode == 1
    assert f"{workdir}/nope.conf" in r.stderr


def populate(d):
    """Triplets in two networks (one passed), an auto-whitelisted client
    and a store whitelist entry."""
    c = d.client()
    a = req(client="192.0.2.180", sender="alice@example.net",
            recipient="bob@example.org")
    b = req(client="198.51.100.180", sender="carol@example.com",
            recipient="dave@example.org")
    e = req(client="2001:db8:5::1", sender="erin@example.com",
            recipient="frank@example.org")
    for x in (a, b, e):
        assert c.request(x) == DEFER1
    time.sleep(1.1)
    assert c.request(retry(a)) == "DUNNO"
    d.db("whitelist", "add", "203.0.113.0/24")
    return a, b, e


def records(d):
    return sorted(d.db("dump").stdout.splitlines())


def test_db_roundtrip_dump_purge_load(daemon):
    d = daemon(greylist={"auto_whitelist": "1"})
    populate(d)
    assert d.stop() == 0
    dump = d.db("dump").stdout
    recs = [json.loads(l) for l in dump.splitlines()]
    tables = sorted(r["table"] for r in recs)
    assert tables == ["clients", "triplets", "triplets", "triplets",
                      "whitelist"], recs
    listing = d.db("list").stdout
    stats = d.db("stats").stdout
    assert "triplets: 3\nclients: 1\nwhitelist: 1\n" in stats, stats

    p = d.db("purge", "--all")
    assert p.stdout == "purged 5 record(s)\n"
    assert d.db("dump").stdout == ""
    assert d.db("list").stdout == ""
    assert "triplets: 0\nclients: 0\nwhitelist: 0\n" in \
        d.db("stats").stdout

    ld = d.db("load", input=dump)
    assert ld.stdout == "loaded 5 record(s)\n"
    assert d.db("dump").stdout == dump
    assert d.db("list").stdout == listing
    # The daemon uses the loaded store: the passed triplet still passes.
    d.start()
    c = d.client()
    assert c.request(req(client="192.0.2.181", sender="alice@example.net",
                         recipient="bob@example.org")) == "DUNNO"


def test_db_roundtrip_while_daemon_runs(daemon):
    d = daemon()
    a, b, e = populate(d)
    dump = d.db("dump").stdout
    d.db("purge", "--all")
    # Everything is gone for the running daemon too.
    assert d.client().request(retry(a)) == DEFER1
    d.db("purge", "--all")
    d.db("load", input=dump)
    assert records(d) == sorted(dump.splitlines())
    assert d.client().request(retry(a)) == "DUNNO"


def test_db_list_filters_and_delete(daemon):
    d = daemon()
    a, b, e = populate(d)
    lst = d.db("list").stdout.splitlines()
    assert len(lst) == 3
    one = d.db("list", "--client", "192.0.2.0/24").stdout.splitlines()
    assert len(one) == 1 and one[0].startswith(
        "192.0.2.0/24 alice@example.net bob@example.org ")
    assert " passed=1 passed" in one[0] or one[0].endswith("passed"), one
    assert d.db("list", "--client", "198.51.100.7").stdout.startswith(
        "198.51.100.0/24 carol@example.com dave@example.org ")
    assert d.db("list", "--client", "2001:db8::/32").stdout.startswith(
        "2001:db8:5::/64 erin@example.com frank@example.org ")
    assert d.db("list", "--sender", "CAROL").stdout.startswith(
        "198.51.100.0/24 carol@")
    assert d.db("list", "--recipient", "frank").stdout.startswith(
        "2001:db8:5::/64 ")
    assert d.db("list", "--sender", "nobody-here").stdout == ""

    r = d.db("delete", "--client", "198.51.100.0/24")
    assert r.stdout == "deleted 1 record(s)\n"
    r = d.db("delete", "--sender", "erin@")
    assert r.stdout == "deleted 1 record(s)\n"
    left = d.db("list").stdout.splitlines()
    assert len(left) == 1 and "alice@example.net" in left[0]
    # Deleted triplets start over.
    assert d.client().request(retry(b)) == DEFER1
    r = d.db("delete", check=False)
    assert r.returncode != 0


def test_db_purge_expired_only(daemon):
    # Stopped: the daemon's own expiry sweep would beat `db purge` to it.
    d = daemon(start=False)
    now = int(time.time())
    old = {"table": "triplets", "net": "192.0.2.0/24",
           "sender": "old@example.net", "recipient": "x@example.org",
           "first_seen": now - 100000, "last_seen": now - 100000,
           "expires": now - 10, "count": 1, "passed": 0}
    live = dict(old, sender="new@example.net", expires=now + 1000)
    r = d.db("load", input=json.dumps(old) + "\n" + json.dumps(live) + "\n")
    assert r.stdout == "loaded 2 record(s)\n"
    # Expired records are not shown.
    assert "old@example.net" not in d.db("list").stdout
    assert d.db("purge").stdout == "purged 1 record(s)\n"
    assert [json.loads(l)["sender"]
            for l in d.db("dump").stdout.splitlines()] == ["new@example.net"]


def test_db_load_rejects_bad_lines(daemon):
    d = daemon(start=False)
    r = d.db("load", input='{"table":"nope"}\n', check=False)
    assert r.returncode != 0
    assert "line 1" in r.stderr, r.stderr
    r = d.db("load", input="not json\n", check=False)
    assert r.returncode != 0 and "line 1" in r.stderr


def test_db_whitelist_commands(daemon):
    d = daemon(start=False)
    assert d.db("whitelist", "add", "192.0.2.0/24",
                "2001:db8::/32").returncode == 0
    got = [l.split()[0] for l in
           d.db("whitelist", "list").stdout.splitlines()]
    assert sorted(got) == ["192.0.2.0/24", "2001:db8::/32"]
    r = d.db("whitelist", "add", "not-a-net", check=False)
    assert r.returncode != 0
    r = d.db("whitelist", "remove", "198.51.100.0/24", check=False)
    assert "198.51.100.0/24: not listed" in r.stderr
    d.db("whitelist", "remove", "192.0.2.0/24")
    got = [l.split()[0] for l in
           d.db("whitelist", "list").stdout.splitlines()]
    assert got == ["2001:db8::/32"]
    # Run as root before the daemon's first start, `db` created the store
    # for the daemon's user: the daemon opens it and honours the entry.
    nobody = pwd.getpwnam("nobody").pw_uid
    for f in [d.store_path, *d.store_path.iterdir()]:
        assert os.stat(f).st_uid == nobody, f
    d.start()
    assert d.client().request(req(client="2001:db8:9::1")) == "DUNNO"


def test_db_unknown_command():
    r = subprocess.run([BIN, "db", "frobnicate"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2
    assert 'unknown command "frobnicate"' in r.stderr


def test_store_whitelist_applies_from_the_first_request(daemon, spawn):
    # spawn-mode processes live for one Postfix connection and are asked
    # at once: the store's whitelist must be in force from the start.
    d = daemon(start=False)
    d.db("whitelist", "add", "198.51.100.0/24")
    for _ in range(3):
        p = spawn(d.conf)
        assert p.request(req(client="198.51.100.9")) == "DUNNO"
        assert p.close() == 0
    d.start()
    assert d.client().request(req(client="198.51.100.10")) == "DUNNO"
    assert d.client().request(req(client="192.0.2.10")) == DEFER1


def test_command_line_basics(workdir):
    def run(*a):
        return subprocess.run([BIN, *a], capture_output=True, text=True,
                              timeout=10)
    r = run("version")
    assert r.returncode == 0 and r.stdout.startswith("greyspf ")
    for cmd in ("serve", "policy", "config", "db"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and r.stdout.startswith(
            f"usage: greyspf {cmd}"), (cmd, r.stdout, r.stderr)
    r = run("frobnicate")
    assert r.returncode == 2 and 'unknown command "frobnicate"' in r.stderr
    r = run("serve", "-c", str(workdir / "missing.conf"))
    assert r.returncode == 1
    assert f"{workdir}/missing.conf: No such file or directory" in r.stderr
    r = run("serve", "extra")
    assert r.returncode == 2 and 'unexpected argument "extra"' in r.stderr


def test_db_load_validates_records(daemon):
    d = daemon(start=False)
    now = int(time.time())
    good = {"table": "triplets", "net": "192.0.2.0/24",
            "sender": "a@example.net", "recipient": "b@example.org",
            "first_seen": now, "last_seen": now, "expires": now + 1000,
            "count": 1, "passed": 0}
    bad = [
        dict(good, net="not-a-net"),
        dict(good, net="192.0.2.0/33"),
        dict(good, sender="a\u0000b@example.net"),
        dict(good, recipient="b@exa\u0000mple.org"),
        dict(good, count=4294967296),
        dict(good, passed=2 ** 40),
        {"table": "clients", "key": "junk", "first_seen": now,
         "last_seen": now, "expires": now + 1000, "count": 1, "passed": 1},
        {"table": "whitelist", "key": "junk", "first_seen": now,
         "last_seen": now, "expires": now + 1000, "count": 0, "passed": 0},
    ]
    for i, rec in enumerate(bad):
        first = dict(good, recipient=f"ok{i}@example.org")
        r = d.db("load", input=json.dumps(first) + "\n" + json.dumps(rec)
                 + "\n", check=False)
        assert r.returncode == 1, rec
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "greyspf db load: line 2: "), (rec, r.stderr)
        assert "1 record(s) loaded before it" in lines[0], r.stderr
    dump = [json.loads(l) for l in d.db("dump").stdout.splitlines()]
    assert sorted(x["recipient"] for x in dump) == \
        [f"ok{i}@example.org" for i in range(len(bad))]
    # What the daemon itself stores loads fine: SPF-keyed and IPv6 nets.
    ok = [dict(good, net="spf:example.net"),
          dict(good, net="2001:db8:1::/64"),
          {"table": "clients", "key": "2001:db8:1::/64", "first_seen": now,
           "last_seen": now, "expires": now + 1000, "count": 1,
           "passed": 1},
          {"table": "whitelist", "key": "198.51.100.0/24",
           "first_seen": now, "last_seen": now, "expires": now + 1000,
           "count": 0, "passed": 0}]
    r = d.db("load", input="".join(json.dumps(x) + "\n" for x in ok))
    assert r.stdout == f"loaded {len(ok)} record(s)\n"
