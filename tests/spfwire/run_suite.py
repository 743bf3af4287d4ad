#!/usr/bin/python3
"""run_suite - the OpenSPF RFC 7208 suite over the wire.

Where tests/spf runs the SPF engine in-process with canned answers, this
drives the real `greyspf check` binary through the real resolver
(libunbound) against the DNS fixture (tests/fixtures/dnsserver.py), one
fixture server per scenario (scenarios reuse owner names with different
records, so they cannot share one server).

For every test: `greyspf check --ip HOST --sender MAILFROM --helo HELO
--dns 127.0.0.1@PORT --dns-timeout T --json`; the result must be one of
the suite's acceptable results and, where the suite gives an explanation
and the result is fail, the explanation must match. The suite's
`DEFAULT` explanation means "the implementation's default": `greyspf
check` cannot change its default, so DEFAULT must be our default text
("SPF fail: <ip> is not allowed to send mail from <domain>"), i.e. not a
text taken from the domain.

Zone entries marked TIMEOUT are never answered; with a small
--dns-timeout those tests end quickly in temperror.

Usage: run_suite.py GREYSPF_BIN [SUITE_YML] [-j N] [-k SUBSTRING] [-v]
Prints one line per failure, then "N passed, N failed"; exit status 1 on
any failure, 2 if the fixture could not start.
"""

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "dnsserver.py"
DEFAULT_SUITE = Path("/work/shared/spf-test-suite/rfc7208-tests.yml")
if not DEFAULT_SUITE.exists():  # the identical copy in the repository
    DEFAULT_SUITE = REPO / "tests" / "spf" / "suite" / "rfc7208-tests.yml"
PYTHON = "/usr/bin/python3"
# Per-query timeout for the checks: small so that TIMEOUT tests end fast,
# large enough for a loaded machine to answer loopback queries in time.
DNS_TIMEOUT = "1.5"
# Wall-clock bound for one `greyspf check` (a hung process is a failure,
# not a hung test run).
CHECK_DEADLINE = 30


def load_scenarios(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


class Fixture:
    """One dnsserver.py process serving one scenario."""

    def __init__(self, suite, scenario, logdir):
        self.log = Path(logdir) / f"scenario{scenario}.log"
        self.proc = subprocess.Popen(
            [PYTHON, str(FIXTURE), "--port", "0", "--suite", str(suite),
             "--scenario", str(scenario), "--log", str(self.log)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.scenario = scenario
        self.port = None

    def wait_port(self):
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            err = self.proc.stderr.read() if self.proc.poll() is not None \
                else ""
            raise RuntimeError(f"fixture for scenario {self.scenario} did "
                               f"not start: {line!r} {err}")
        self.port = int(line)
        return self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def accepted(test):
    r = test["result"]
    return [r] if isinstance(r, str) else list(r)


def default_explanation_ok(text, host):
    """Our default explanation (SPF_DEFAULT_EXPLANATION in src/spf/spf.h:
    "SPF fail: %{i} is not allowed to send mail from %{d}")."""
    m = re.fullmatch(r"SPF fail: (\S+) is not allowed to send mail from "
                     r"(\S+)", text or "")
    return m is not None and m.group(1).lower() == host.lower()


def run_check(binary, port, test):
    argv = [binary, "check", "--ip", str(test["host"]),
            "--sender", str(test["mailfrom"]), "--helo", str(test["helo"]),
            "--dns", f"127.0.0.1@{port}", "--dns-timeout", DNS_TIMEOUT,
            "--json"]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, timeout=CHECK_DEADLINE)
    except subprocess.TimeoutExpired:
        return None, f"no result within {CHECK_DEADLINE}s", 0.0
    took = time.monotonic() - t0
    if p.returncode != 0:
        return None, (f"exit {p.returncode}: "
                      f"{p.stderr.decode(errors='replace').strip()}"), took
    try:
        return json.loads(p.stdout), None, took
    except ValueError as e:
        return None, f"bad JSON ({e}): {p.stdout[:200]!r}", took


def judge(test, out):
    """Returns None if out satisfies test, else a reason."""
    ok = accepted(test)
    if out["result"] not in ok:
        return f"expected {'|'.join(ok)}, got {out['result']}"
    exp = test.get("explanation")
    if exp is not None and out["result"] == "fail":
        got = out.get("explanation")
        if exp == "DEFAULT":
            if not default_explanation_ok(got, str(test["host"])):
                return f"expected the default explanation, got {got!r}"
        elif got != exp:
            return f"expected explanation {exp!r}, got {got!r}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("suite", nargs="?", default=str(DEFAULT_SUITE))
    ap.add_argument("-j", type=int, default=max(8, (os.cpu_count() or 2) * 4))
    ap.add_argument("-k", default="", help="only tests whose name contains")
    ap.add_argument("-v", action="store_true", help="print every test")
    ap.add_argument("--logdir", default=None,
                    help="keep the fixtures' query logs here")
    args = ap.parse_args()

    scenarios = load_scenarios(args.suite)
    logdir = args.logdir
    if logdir is None:
        import tempfile
        logdir = tempfile.mkdtemp(prefix="spfwire-")
    os.makedirs(logdir, exist_ok=True)

    started = time.monotonic()
    fixtures = [Fixture(args.suite, i, logdir)
                for i in range(1, len(scenarios) + 1)]
    try:
        for f in fixtures:
            f.wait_port()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        for f in fixtures:
            f.stop()
        return 2

    jobs = []
    for idx, (sc, fx) in enumerate(zip(scenarios, fixtures), 1):
        for name, test in sc["tests"].items():
            if args.k in name:
                jobs.append((idx, sc["description"], name, test, fx.port))

    passed = failed = 0
    slowest = (0.0, "")
    try:
        with concurrent.futures.ThreadPoolExecutor(args.j) as pool:
            futs = {pool.submit(run_check, args.binary, j[4], j[3]): j
                    for j in jobs}
            results = []
            for fut in concurrent.futures.as_completed(futs):
                results.append((futs[fut], fut.result()))
        results.sort(key=lambda r: (r[0][0], r[0][2]))
        for (idx, desc, name, test, _), (out, err, took) in results:
            if took > slowest[0]:
                slowest = (took, name)
            why = err if out is None else judge(test, out)
            if why is None:
                passed += 1
                if args.v:
                    print(f"ok   {name} [{idx}: {desc}]: {out['result']}")
                continue
            failed += 1
            extra = ""
            if out is not None:
                extra = (f" (explanation={out.get('explanation')!r} "
                         f"problem={out.get('problem')!r} "
                         f"mechanism={out.get('mechanism')!r})")
            print(f"FAIL {name} [{idx}: {desc}] host={test['host']} "
                  f"mailfrom={test['mailfrom']!r} helo={test['helo']!r}: "
                  f"{why}{extra}")
    finally:
        for f in fixtures:
            f.stop()
    print(f"{passed} passed, {failed} failed "
          f"({time.monotonic() - started:.1f}s, slowest check "
          f"{slowest[0]:.2f}s: {slowest[1]})")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
