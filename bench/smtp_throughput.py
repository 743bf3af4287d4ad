#!/usr/bin/python3
"""smtp_throughput - messages/s through a real Postfix with greyspf in the
path versus the same Postfix without the policy check, in one run.

Driven by bench/smtp-throughput.sh (read it for the settings). It builds
the private Postfix instance of tests/postfix/ (pfharness, pfenv: the
configuration of doc/postfix.md for the chosen mode) with two SMTP
listeners:
  policy  smtpd_recipient_restrictions from the guide (check_policy_service)
  plain   the same smtpd with `-o smtpd_recipient_restrictions=
          permit_mynetworks,reject_unauth_destination` (no policy check)
greyspf greylists in learning mode (records every triplet, defers nothing)
with auto_whitelist = 0, so every message is a store update; smtp-source
-N makes each recipient, hence each triplet, new. Accepted mail goes to
discard(8), so delivery does not compete for the disk.

For each mode, each listener gets a warm-up, then R rounds of measured
runs in alternating order: smtp-source -s M -m N, every message its own
connection (as from distinct MTAs) or, with --reuse, -d: M connections
carry all messages (less smtpd start-up, so greyspf's share shows more);
the median of the rounds counts. All N must be accepted (smtp-source aborts on any other reply).
Bounded: N <= 100000, R <= 10, every smtp-source run is killed after TIME_LIMIT s.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" /
                       "postfix"))
import pfharness as h  # noqa: E402
from pfenv import MODES, TEST_HEAD, Env  # noqa: E402

MAX_MESSAGES = 100000   # bound on -n, a load test must stay bounded
MAX_SESSIONS = 100      # Postfix's default_process_limit
MAX_ROUNDS = 10        # bound on --rounds
TIME_LIMIT = 300        # seconds per smtp-source run, then it is killed

LEARNING_TAIL = """
[store]
backend = lmdb
path = {store}

[greylist]
learning = yes
auto_whitelist = 0
"""

PLAIN_OVERRIDE = ("  -o smtpd_recipient_restrictions="
                  "permit_mynetworks,reject_unauth_destination")


def smtp_source(port, n, sessions, sender, rcpt, reuse=False):
    argv = ["smtp-source", "-s", str(sessions), "-m", str(n), "-N",
            *(["-d"] if reuse else []),
            "-l", "1000", "-M", "client.example.net", "-f", sender,
            "-t", rcpt, f"127.0.0.1:{port}"]
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=TIME_LIMIT)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({p.returncode}): "
                           f"{p.stdout.strip()[-2000:]}")
    return dt


def accepted_since(pf, mark):
    """smtpd transactions (queue IDs given) logged since mark."""
    return len(re.findall(r"postfix/smtpd\[\d+\]: [0-9A-F]+: client=",
                          pf.log_since(mark)))


def run_mode(mode, n, sessions, warmup, rounds, snippets, keep, base,
             reuse):
    root = h.make_root(f"greyspf-bench-smtp-{mode}-", base)
    plain_port = h.free_port()
    extra = (f"127.0.0.1:{plain_port} inet  n       -       n       -       -"
             f"       smtpd\n{PLAIN_OVERRIDE}")
    env = Env(mode, root, snippets, gs_head_extra=TEST_HEAD, gs_tail=LEARNING_TAIL,
        extra_listen=extra)
    env.pf.main_tail = "virtual_transport = discard\n"
    res = {"mode": mode, "messages": n, "sessions": sessions,
           "reuse": reuse}
    try:
        env.start()
        ports = {"greyspf": env.pf.port, "plain": plain_port}
        for name in ("plain", "greyspf"):
            smtp_source(ports[name], warmup, sessions,
                        f"warm@{name}.example.net", f"w@{h.RCPT_DOMAIN}",
                        reuse)
        runs = {"plain": [], "greyspf": []}
        for rnd in range(rounds):
            # Alternate the order so that drift in the machine's load
            # (other jobs, the queue filling) favours neither side.
            order = ("plain", "greyspf") if rnd % 2 == 0 else \
                ("greyspf", "plain")
            for name in order:
                time.sleep(1)  # let the previous run's deliveries drain
                mark = env.pf.log_mark()
                dt = smtp_source(ports[name], n, sessions,
                                 f"bench{rnd}@{name}.example.net",
                                 f"r{rnd}@{h.RCPT_DOMAIN}", reuse)
                h.wait_for(lambda: accepted_since(env.pf, mark) >= n, 30,
                           f"{n} accepted in the log")
                runs[name].append(n / dt)
        for name, v in runs.items():
            res[name] = {"msgs_per_s": round(statistics.median(v), 1),
                         "runs": [round(x, 1) for x in v]}
        res["ratio"] = round(res["greyspf"]["msgs_per_s"] /
                             res["plain"]["msgs_per_s"], 3)
        res["round_ratios"] = [round(g / p, 3) for g, p in
                               zip(runs["greyspf"], runs["plain"])]
        if mode != "spawn":
            res["greyspf_alive"] = env.gs.running
    finally:
        env.stop()
        if keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            h.remove_root(root)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--messages", type=int, default=2000)
    ap.add_argument("-s", "--sessions", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3,
                    help="measured runs per listener; the median counts")
    ap.add_argument("--modes", default="inet",
                    help="comma-separated: inet, unix, spawn")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--workdir-base", default="/tmp")
    ap.add_argument("--reuse", action="store_true",
                    help="smtp-source -d: many messages per connection")
    a = ap.parse_args()
    if not 1 <= a.messages <= MAX_MESSAGES:
        ap.error(f"--messages must be 1..{MAX_MESSAGES}")
    if not 1 <= a.sessions <= MAX_SESSIONS:
        ap.error(f"--sessions must be 1..{MAX_SESSIONS}")
    if not 1 <= a.rounds <= MAX_ROUNDS:
        ap.error(f"--rounds must be 1..{MAX_ROUNDS}")
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m}")
    if os.geteuid() != 0:
        sys.exit("smtp_throughput: must run as root (private Postfix)")
    snippets = h.doc_snippets()
    results = [run_mode(m, a.messages, a.sessions, a.warmup, a.rounds,
                        snippets, a.keep, a.workdir_base, a.reuse)
               for m in modes]
    print(f"{'mode':6} {'messages':>8} {'sessions':>8} {'plain msg/s':>12} "
          f"{'greyspf msg/s':>14} {'ratio':>6}  per-round ratios")
    for r in results:
        print(f"{r['mode']:6} {r['messages']:8} {r['sessions']:8} "
              f"{r['plain']['msgs_per_s']:12.1f} "
              f"{r['greyspf']['msgs_per_s']:14.1f} {r['ratio']:6.3f}  "
              f"{' '.join(f'{x:.2f}' for x in r['round_ratios'])}")
    print("msg/s: median of the rounds; ratio = greyspf / plain")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
