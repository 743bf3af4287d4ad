"""SIGHUP: the new configuration and whitelist files apply to open and new
connections; an invalid one is logged and the running one kept."""

import time

from helpers import logline, req, retry

RELOADED = "configuration reloaded from "
FAILED = "reload failed, keeping the running configuration: "


def defer(n):
    return f"DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in {n} seconds"


def test_sighup_changes_delay_on_open_connection(daemon):
    d = daemon(greylist={"delay": "1h"})
    c = d.client()
    a = req(client="192.0.2.130")
    assert c.request(a) == defer(3600)
    d.rewrite(greylist={"delay": "1"})
    d.hup()
    assert f"info: {RELOADED}{d.conf}" in d.msgs() or \
        any(m.endswith(f"{RELOADED}{d.conf}") for m in d.msgs())
    # Same connection, new delay; the triplet recorded under the old
    # delay now passes after the new one.
    assert c.request(req(client="192.0.2.131")) == defer(1)
    time.sleep(1.1)
    assert c.request(retry(a)) == "DUNNO"
    assert d.client().request(req(client="192.0.2.132")) == defer(1)


def test_sighup_reloads_whitelist_files(daemon, workdir):
    wl = workdir / "clients.txt"
    wl.write_text("192.0.2.50\n")
    d = daemon(greylist={"whitelist_clients": str(wl)})
    c = d.client()
    a = req(client="198.51.100.140")
    assert c.request(a) == defer(1)
    wl.write_text("192.0.2.50\n198.51.100.0/24\n")
    d.hup()
    b = req(client="198.51.100.141")
    assert c.request(b) == "DUNNO"
    assert logline("Whitelisted", b) + \
        f'; net "198.51.100.0/24" ({wl}:2)' in d.msgs()
    # A recipient whitelist added by the new configuration.
    rl = workdir / "rcpts.txt"
    rl.write_text("@vip.example.org\n")
    d.rewrite(greylist={"whitelist_recipients": str(rl)})
    d.hup()
    assert c.request(req(client="192.0.2.141",
                         recipient="x@vip.example.org")) == "DUNNO"
    assert c.request(req(client="192.0.2.141")) == defer(1)


def test_sighup_invalid_config_keeps_running_one(daemon, workdir):
    d = daemon(greylist={"delay": "1"})
    c = d.client()
    good = d.conf.read_text()
    d.rewrite(raw=good.replace("delay = 1", "delay = banana"))
    line = d.conf.read_text().splitlines().index("delay = banana") + 1
    d.hup(expect=FAILED)
    msgs = d.msgs()
    assert f"error: {FAILED}{d.conf}:{line}: delay: \"banana\" is not a " \
        "duration from 0s to 86400s (e.g. 300, 5m, 2h, 2d)" in msgs, msgs
    assert not any(RELOADED in m for m in msgs)
    assert c.request(req(client="192.0.2.150")) == defer(1)
    assert d.client().request(req(client="192.0.2.151")) == defer(1)

    # A broken whitelist file is refused the same way.
    bad = workdir / "bad.txt"
    bad.write_text("/^(unclosed/\n")
    d.rewrite(raw=good.replace("delay = 1",
                               f"delay = 1\nwhitelist_clients = {bad}"))
    d.hup(expect=FAILED)
    assert any(m.startswith(f"error: {FAILED}{bad}:1: bad regex")
               for m in d.msgs()), d.msgs()
    assert c.request(req(client="192.0.2.152")) == defer(1)

    # A missing configuration file too.
    d.conf.unlink()
    d.hup(expect=FAILED)
    assert c.request(req(client="192.0.2.153")) == defer(1)

    # And a fixed file is taken again.
    d.rewrite(raw=good.replace("delay = 1", "delay = 7"))
    d.hup()
    assert c.request(req(client="192.0.2.154")) == defer(7)


def test_sighup_names_every_restart_only_change(daemon):
    d = daemon()
    d.rewrite(extra="[dns]\nservers = 127.0.0.1@5353\ntimeout = 3s\n",
              top={"metrics": "inet:127.0.0.1:1"})
    d.hup()
    assert "warning: reload: metrics, dns.servers, dns.timeout changed; " \
        "that takes effect only after a restart" in d.msgs()
    # per-message options change without a warning
    d.rewrite(greylist={"delay": "3"})
    d.hup(expect="configuration reloaded", timeout=5.0)
    assert d.msgs().count(
        "warning: reload: metrics, dns.servers, dns.timeout changed; "
        "that takes effect only after a restart") == 1


def test_sighup_listen_change_needs_restart(daemon):
    d = daemon()
    c = d.client()
    d.rewrite(top={"listen": "inet:127.0.0.1:1"})
    d.hup()
    assert "warning: reload: listen changed; that takes effect only " \
        "after a restart" in d.msgs()
    assert c.request(req()) == defer(1)
    assert d.client().request(req()) == defer(1)


def test_many_sighups_under_traffic(daemon):
    d = daemon()
    conns = [d.client() for _ in range(5)]
    for i in range(10):
        d.rewrite(greylist={"delay": str(10 + i)})
        d.signal(__import__("signal").SIGHUP)
        for c in conns:
            r = c.request(req(client="192.0.2.160"))
            assert r.startswith("DEFER_IF_PERMIT 4.7.1 Greylisted"), r
    # Signals sent close together may coalesce: one more, waited for.
    d.hup()
    assert conns[0].request(req(client="192.0.2.161")) == defer(19)


def test_sighup_in_spawn_mode(daemon, spawn):
    import signal
    d = daemon(start=False)
    p = spawn(d.conf)
    assert p.request(req(client="192.0.2.170")) == defer(1)
    d.rewrite(greylist={"delay": "7"})
    p.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert p.request(req(client="192.0.2.171")) == defer(7)
    assert p.proc.poll() is None
