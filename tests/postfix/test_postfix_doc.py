"""doc/postfix.md: the snippets the other tests run are all there, carry
the values the harness substitutes (so a changed port or path in the guide
cannot silently escape the tests), and put the policy check where the
guide says."""

import re
import subprocess

import pytest

import pfharness as h
from pfenv import MODES

NEEDED = {
    "greyspf.conf-inet": [f"inet:127.0.0.1:{h.DOC_PORT}"],
    "greyspf.conf-unix": [f"unix:{h.DOC_QUEUE}/private/greyspf"],
    "greyspf.conf-spawn": [],
    "greyspf.conf-backup-mx": [f"[client {h.DOC_BACKUP_MX}/32]"],
    "main.cf-inet": [f"inet:127.0.0.1:{h.DOC_PORT}"],
    "main.cf-unix": ["unix:private/greyspf"],
    "main.cf-spawn": ["unix:private/greyspf", "greyspf_time_limit"],
    "main.cf-policy": ["smtpd_policy_service_timeout",
                       "smtpd_policy_service_max_idle",
                       "smtpd_policy_service_max_ttl",
                       "smtpd_policy_service_try_limit"],
    "master.cf-spawn": [h.DOC_BIN, h.DOC_CONF, "spawn", "user=greyspf"],
}

ORDER = ["permit_mynetworks", "permit_sasl_authenticated",
         "reject_unauth_destination", "check_policy_service"]


def test_snippets_present(snippets):
    assert sorted(snippets) == sorted(NEEDED)
    for name, needles in NEEDED.items():
        for n in needles:
            assert n in snippets[name], (name, n)


@pytest.mark.parametrize("mode", MODES)
def test_restriction_order(snippets, mode):
    text = snippets[f"main.cf-{mode}"]
    pos = [text.find(word) for word in ORDER]
    assert all(p >= 0 for p in pos) and pos == sorted(pos), text
    assert "default_action=DUNNO" in text


def test_greyspf_snippets_valid(snippets, tmp_path):
    """Each greyspf.conf snippet is accepted by `greyspf config`."""
    for mode in MODES:
        conf = tmp_path / f"{mode}.conf"
        conf.write_text(snippets[f"greyspf.conf-{mode}"] + "\n" +
                        snippets["greyspf.conf-backup-mx"])
        p = subprocess.run([h.greyspf_bin(), "config", "-c", str(conf)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stdout
        assert re.search(r"^user = greyspf$", p.stdout, re.M), p.stdout
