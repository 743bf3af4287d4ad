"""Fixtures of the Postfix end-to-end tests.

`pf_mode` (module scope, parametrised inet / unix / spawn): a private
Postfix instance wired to greyspf exactly as doc/postfix.md says for that
mode, with greyspf's greylisting at delay = 2s. See pfharness.py for the
instance's layout.

Run (as root; postfix and swaks installed):
    GREYSPF_BIN=build/greyspf /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/postfix

Environment: GREYSPF_BIN (default build/greyspf); GREYSPF_PF_KEEP=1 keeps
each instance's folder (/tmp/greyspf-pf-*: Postfix and greyspf logs,
delivered mail); GREYSPF_PF_DEBUG=1 sets greyspf's `debug = yes`. With a
sanitizer build (-DGREYSPF_SANITIZE=ON) every ASan/UBSan report, from the
daemon or from spawned processes, fails the module that produced it.
"""

import os
import shutil
from pathlib import Path

import pytest

import pfharness as h
from pfenv import MODES, Env


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
    reports = env.sanitizer_reports()
    if reports:
        pytest.fail(f"sanitizer reports ({request.param} mode, kept "
                    f"{root}):\n" +
                    "\n".join(reports)[-8000:], pytrace=False)
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


