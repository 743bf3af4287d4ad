#!/usr/bin/python3
"""policyd-spf-spawn - runs Debian's postfix-policyd-spf-python (policyd-spf)
the way Postfix's spawn(8) does: one process per policy connection, the
connection on its stdin and stdout, for bench/spf-daemon-bench.sh.

    policyd-spf-spawn.py --listen PORT --dns-port P --config FILE
                         --pool N [--domains FILE] [--warm-ip IP] [--no-cache]

The parent binds 127.0.0.1:PORT and starts N children, each a separate
exec'd /usr/bin/python3 (this file with --child), so each has its own
interpreter and heap exactly as a spawned policyd-spf has. A child:
  1. points dnspython at the fixture (see "DNS" below);
  2. imports policyd-spf's code (spf_engine, pyspf, authres);
  3. with --domains, warms its DNS cache: one MAIL FROM and one HELO check
     per sender domain, as a request from --warm-ip would make;
  4. reports ready, accepts ONE connection, puts it on fds 0 and 1 and runs
     policyd-spf's main() (the code /usr/bin/policyd-spf runs), which reads
     requests until EOF; then the child exits.
The parent prints "ready N" on stdout once all N children are ready, then
"pids P1 P2 ..." (the children, for memory readings), and waits; it does
not replace children (the benchmark opens exactly N connections). SIGTERM:
the parent kills its children and exits.

Difference from spawn(8): the process is started before its connection
arrives, so Python start-up (~0.3 s of CPU per process here) is outside
the measured window. Postfix pays it once per smtpd process's policy
connection, which then serves many requests; the benchmark measures that
steady state.

DNS: pyspf looks names up through dnspython's module-level default
resolver (spf.DNSLookup -> dns.resolver.query ->
dns.resolver.get_default_resolver()), which reads /etc/resolv.conf, where
no port can be given. The child installs its own default resolver before
pyspf's first lookup: Resolver(configure=False), nameservers [127.0.0.1],
port P. No LD_PRELOAD, no mount namespace, no change to the system's
resolv.conf, and policyd-spf's code runs unchanged. By default the
resolver also gets a dns.resolver.Cache() (per process, warm after step 3):
a "warm DNS cache" at no cost per query, policyd-spf's best case; in
production it would ask a local caching resolver over UDP for every
lookup. --no-cache leaves the cache out.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys


def child(a):
    import dns.resolver

    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = a.dns_port
    res.lifetime = 10.0
    if not a.no_cache:
        res.cache = dns.resolver.Cache()
    dns.resolver.default_resolver = res

    import spf
    from spf_engine.policyd_spf import main

    if a.domains:
        with open(a.domains) as f:
            doms = [ln.strip() for ln in f
                    if ln.strip() and not ln.startswith("#")]
        for d in doms:
            helo = "mx." + d
            spf.check2(i=a.warm_ip, s="postmaster@" + helo, h=helo)
            spf.check2(i=a.warm_ip, s="user@" + d, h=helo)

    lsock = socket.socket(fileno=a.child)
    os.write(a.ready_fd, b"r")
    os.close(a.ready_fd)
    conn, _ = lsock.accept()
    lsock.close()
    os.dup2(conn.fileno(), 0)
    os.dup2(conn.fileno(), 1)
    conn.close()
    sys.argv = ["policyd-spf", a.config]
    sys.exit(main())


def parent(a):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", a.listen))
    lsock.listen(max(128, a.pool))
    rfd, wfd = os.pipe()
    me = os.path.abspath(__file__)
    args = [sys.executable, me, "--child", str(lsock.fileno()),
            "--ready-fd", str(wfd), "--dns-port", str(a.dns_port),
            "--config", a.config, "--warm-ip", a.warm_ip]
    if a.domains:
        args += ["--domains", a.domains]
    if a.no_cache:
        args.append("--no-cache")
    kids = []

    def stop(*_):
        # No Popen.wait() here: the main thread may be inside one, holding
        # its lock. Killed children are reaped by init once we exit.
        for k in kids:
            if k.returncode is not None:
                continue  # reaped: its PID may belong to another process
            try:
                os.kill(k.pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(a.pool):
        kids.append(subprocess.Popen(args, pass_fds=(lsock.fileno(), wfd)))
    os.close(wfd)
    got = 0
    while got < a.pool:
        b = os.read(rfd, a.pool)
        if not b:
            print("policyd-spf-spawn: a child died before it was ready",
                  file=sys.stderr)
            stop()
        got += len(b)
    print("ready %d" % got, flush=True)
    print("pids " + " ".join(str(k.pid) for k in kids), flush=True)
    for k in kids:
        k.wait()
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int)
    p.add_argument("--dns-port", type=int, required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--pool", type=int, default=100)
    p.add_argument("--domains")
    p.add_argument("--warm-ip", default="192.0.2.1")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child is not None:
        return child(a)
    if a.listen is None:
        p.error("--listen is required")
    return parent(a)


if __name__ == "__main__":
    sys.exit(main())
