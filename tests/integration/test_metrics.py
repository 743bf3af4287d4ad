"""GET /metrics: the daemon's counters in the Prometheus text format,
served from its own event loop."""

import time
import urllib.error
import urllib.request

import pytest

from helpers import free_port, req, retry
from spf_helpers import dnsfix

__all__ = ["dnsfix"]  # the fixture, for pytest

DEFER1 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = int(value)
    return values


def test_metrics_count_decisions_and_connections(daemon):
    port = free_port()
    d = daemon(top={"metrics": f"inet:127.0.0.1:{port}"})
    before = scrape(port)
    assert before["greyspf_requests_total"] == 0
    assert before["greyspf_connections"] == 0
    c = d.client()
    a = req()
    assert c.request(a) == DEFER1
    assert c.request(a).startswith("DEFER_IF_PERMIT 4.7.1")
    time.sleep(1.1)
    assert c.request(retry(a)) == "DUNNO"
    m = scrape(port)
    assert m["greyspf_requests_total"] == 3
    assert m['greyspf_greylist_total{verdict="initial"}'] == 1
    assert m['greyspf_greylist_total{verdict="pending"}'] == 1
    assert m['greyspf_greylist_total{verdict="allowed"}'] == 1
    assert m["greyspf_connections"] == 1
    assert m['greyspf_spf_results_total{result="pass"}'] == 0
    # greylisting alone: no DNS lookup, hit or miss
    assert m["greyspf_dns_cache_hits_total"] == 0
    assert m["greyspf_dns_cache_misses_total"] == 0
    d.wait_log("metrics on inet:127.0.0.1:%d/metrics" % port)


def test_metrics_other_paths_and_methods_refused(daemon):
    port = free_port()
    daemon(top={"metrics": f"inet:127.0.0.1:{port}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
    assert e.value.code == 404
    r = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                               data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(r, timeout=5)
    assert e.value.code in (400, 405, 413)


def test_metrics_endpoint_must_be_inet(workdir):
    import subprocess
    from helpers import BIN
    f = workdir / "m.conf"
    f.write_text("metrics = unix:/tmp/x\n")
    r = subprocess.run([BIN, "config", "-c", str(f)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1
    assert "metrics: \"unix:/tmp/x\" is not inet:HOST:PORT" in r.stderr


def test_metrics_count_spf_results_and_dns_cache(daemon, dnsfix):
    from spf_helpers import FAIL_IP, msg, spf_daemon, spf_req
    port = free_port()
    d = spf_daemon(daemon, dnsfix(), top={"metrics":
                                          f"inet:127.0.0.1:{port}"})
    c = d.client()
    a = spf_req("user@example.com")
    assert c.request(a).startswith("PREPEND Received-SPF: pass ")
    # the same message's next recipient reuses the result: no lookup
    c.request(msg(a, "other@example.org"))
    m1 = scrape(port)
    # a new message from the same domain: every lookup from the cache
    assert c.request(spf_req("user@example.com", client=FAIL_IP)) \
        .startswith("550 5.7.23 ")
    m2 = scrape(port)
    # MAIL FROM pass + HELO pass, then the HELO of the failing message
    # (mail.example.org authorises all of 192.0.2.0/24)
    assert m2['greyspf_spf_results_total{result="pass"}'] == 3
    assert m2['greyspf_spf_results_total{result="fail"}'] == 1
    assert m2["greyspf_spf_rejected_total"] == 1
    assert m1["greyspf_dns_cache_misses_total"] > 0
    # only the exp= record, first needed by the fail, is a new lookup
    assert m2["greyspf_dns_cache_misses_total"] == \
        m1["greyspf_dns_cache_misses_total"] + 1
    assert m2["greyspf_dns_cache_hits_total"] > \
        m1["greyspf_dns_cache_hits_total"]
    assert m2["greyspf_dns_cache_entries"] > 0
