"""The Redis store through the daemon: two `greyspf serve` processes (two
MX hosts) sharing one private redis-server; Redis failing under load;
`greyspf db` on a Redis store; hashed keys."""

import json
import re
import threading
import time

import pytest

from helpers import DEFER_RE, logline, req, retry
from redis_helpers import redis_server, redis_store  # noqa: F401 (fixture)

DEFER1 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"
STORE_DEFER = ("DEFER 4.3.0 Temporary greylist store failure, please try "
               "again later")
SECRET = "integration-secret"
# Operation timeout for the outage tests (redis_timeout), seconds, and the
# slack allowed on top of it for scheduling (Python threads, the daemon).
TIMEOUT = 0.5
SLACK = 0.4
# Reconnection backoff ceiling of src/store/redis.c (REDIS_BACKOFF_MAX_MS),
# with room for the handshake.
BACKOFF_MAX = 5.0 + 2.0


def mx(daemon, redis, name, hashed=False, greylist=None, **store):
    """One MX host's daemon on the shared Redis."""
    if hashed:
        store.update(key_hash="hmac", key_secret=SECRET)
    return daemon(name=name, user=None, top={"checks": "greylist"},
                  store=redis_store(redis, **store), greylist=greylist)


def is_defer(action):
    return re.match(DEFER_RE, action) is not None


def count(d, kind):
    return sum(1 for m in d.msgs() if m.startswith(kind + ":"))


@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hmac"])
def test_deferred_at_one_mx_passes_at_the_other(daemon, redis_server,
                                                hashed):
    a, b = (mx(daemon, redis_server, n, hashed) for n in ("mxa", "mxb"))
    first = req(client="192.0.2.10", sender="alice@example.net",
                recipient="bob@example.org")
    assert a.client().request(first) == DEFER1
    # The backup MX knows the triplet: too early there too, not Initial.
    early = retry(first)
    assert b.client().request(early) == DEFER1
    assert any(m.startswith(logline("Pending greylisting", early) + ";")
               for m in b.msgs())
    time.sleep(1.1)
    late = retry(first, client_address="192.0.2.77")  # same /24
    assert b.client().request(late) == "DUNNO"
    assert any(m.startswith(logline("Allowed greylisting", late) + ";")
               for m in b.msgs())
    # And the first MX sees the pass.
    assert a.client().request(retry(first)) == "DUNNO"
    keys = redis_server.keys()
    assert len(keys) == 1 and keys[0].startswith("greyspf:t:")
    if hashed:
        assert re.fullmatch(r"greyspf:t:[0-9a-f]{64}", keys[0])
    else:
        assert "alice@example.net" in keys[0]


def test_simultaneous_first_attempts_record_one_first_seen(daemon,
                                                           redis_server):
    a, b = (mx(daemon, redis_server, n) for n in ("mxa", "mxb"))
    n = 40
    ca, cb = a.client(), b.client()
    msgs = [req(client=f"198.51.100.{i}") for i in range(n)]
    for i, m in enumerate(msgs):
        # Both MX hosts get the same triplet at the same moment; who sends
        # first alternates.
        if i % 2:
            ca.send(m)
            cb.send(retry(m))
        else:
            cb.send(retry(m))
            ca.send(m)
    for _ in msgs:
        assert ca.read_reply() == DEFER1
        assert cb.read_reply() == DEFER1
    # Exactly one of the two attempts was the first, for every triplet.
    assert count(a, "Initial greylisting") + \
        count(b, "Initial greylisting") == n
    assert count(a, "Pending greylisting") + \
        count(b, "Pending greylisting") == n
    recs = [json.loads(l) for l in a.db("dump").stdout.splitlines()]
    trip = [r for r in recs if r["table"] == "triplets"]
    assert len(trip) == n
    for r in trip:
        assert r["count"] == 2 and r["passed"] == 0
        assert r["last_seen"] - r["first_seen"] in (0, 1)


class Load:
    """Clients sending fresh triplets back to back; records per request
    (start, seconds waited, action)."""

    def __init__(self, d, clients=8):
        self.d = d
        self.results = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(clients)]

    def run(self, i):
        c = self.d.client()
        c.timeout = 10.0
        while not self.stop.is_set():
            t0 = time.monotonic()
            act = c.request(req(client=f"203.0.113.{i}"))
            with self.lock:
                self.results.append((t0, time.monotonic() - t0, act))
            time.sleep(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def since(self, t):
        with self.lock:
            return [r for r in self.results if r[0] >= t]


@pytest.mark.parametrize("how", ["killed", "stalled"])
@pytest.mark.parametrize("on_error", ["dunno", "defer"])
def test_redis_outage_under_load(daemon, redis_server, how, on_error):
    d = mx(daemon, redis_server, "mx", redis_timeout=f"{int(TIMEOUT*1000)}ms",
           on_store_error=on_error)
    fallback = "DUNNO" if on_error == "dunno" else STORE_DEFER
    with Load(d) as load:
        time.sleep(0.5)
        t_out = time.monotonic()
        if how == "killed":
            redis_server.kill()
        else:
            redis_server.pause()
        time.sleep(2.0)
        during = load.since(t_out + TIMEOUT + SLACK)
        t_back = time.monotonic()
        if how == "killed":
            redis_server.start()  # same port, empty (no persistence)
        else:
            redis_server.resume()
        # Service resumes by itself: fresh triplets are deferred again.
        deadline = time.monotonic() + BACKOFF_MAX
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if any(r[2] == DEFER1 for r in load.since(time.monotonic()
                                                      - 0.2)):
                break
        time.sleep(0.3)
        t_end = time.monotonic()
    before = [r for r in load.results if r[0] + r[1] < t_out]
    assert before and all(r[2] == DEFER1 for r in before)
    # While Redis was away: the configured answer, never a long wait.
    assert len(during) > 10
    assert {r[2] for r in during} == {fallback}, {r[2] for r in during}
    worst = max(r[1] for r in load.results)
    assert worst <= TIMEOUT + SLACK, f"a request waited {worst:.3f} s"
    # Back: decisions are stored again.
    after = [r for r in load.results if r[0] >= t_end - 0.3]
    assert after and all(r[2] == DEFER1 for r in after), after[-5:]
    assert len(redis_server.keys("greyspf:t:*")) > 0
    assert t_end - t_back <= BACKOFF_MAX + 1
    # The state changes were logged once each.
    assert sum("store: Redis unreachable" in m for m in d.msgs()) == 1
    assert sum("store: Redis reachable again" in m for m in d.msgs()) == 1


def test_redis_down_at_start_then_up(daemon, redis_server):
    redis_server.kill()
    d = mx(daemon, redis_server, "mx", redis_timeout="300ms")
    a = req()
    assert d.client().request(a) == "DUNNO"
    redis_server.start()
    deadline = time.monotonic() + BACKOFF_MAX
    got = None
    while time.monotonic() < deadline:
        got = d.client().request(req())
        if got == DEFER1:
            break
        time.sleep(0.2)
    assert got == DEFER1
    d.wait_log("store: Redis reachable again")


def test_db_commands_on_redis(daemon, redis_server):
    # A long delay: the retry at the end must still be too early.
    d = mx(daemon, redis_server, "mx", greylist={"delay": "5m"})
    c = d.client()
    a = req(client="192.0.2.10", sender="alice@example.net",
            recipient="bob@example.org")
    b = req(client="198.51.100.20", sender="carol@example.net",
            recipient="dave@example.org")
    assert is_defer(c.request(a))
    assert is_defer(c.request(b))

    out = d.db("list")
    assert "192.0.2.0/24 alice@example.net bob@example.org" in out.stdout
    assert "198.51.100.0/24 carol@example.net dave@example.org" in out.stdout
    assert "2 record(s)" in out.stderr
    out = d.db("list", "--sender", "carol").stdout
    assert "carol" in out and "alice" not in out

    stats = d.db("stats").stdout
    assert "backend: redis" in stats
    assert "triplets: 2" in stats and "whitelist: 0" in stats

    dump = d.db("dump").stdout
    recs = [json.loads(l) for l in dump.splitlines()]
    assert {r["sender"] for r in recs} == {"alice@example.net",
                                           "carol@example.net"}

    # Whitelist: plain CIDR keys, read by the daemon after SIGHUP.
    d.db("whitelist", "add", "203.0.113.0/24")
    assert redis_server.keys("greyspf:w:*") == ["greyspf:w:203.0.113.0/24"]
    assert redis_server.command("PTTL", "greyspf:w:203.0.113.0/24") == -1
    assert "203.0.113.0/24" in d.db("whitelist", "list").stdout
    d.hup()
    assert c.request(req(client="203.0.113.9")) == "DUNNO"

    # TTL from the record: a pending triplet lives until first + window.
    key = [k for k in redis_server.keys("greyspf:t:*") if "alice" in k]
    ttl = redis_server.command("TTL", key[0])
    assert 2 * 86400 - 10 <= ttl <= 2 * 86400

    assert "deleted 1 record(s)" in d.db("delete", "--sender",
                                         "alice").stdout
    assert "1 record(s)" in d.db("list").stderr
    # expire/purge: only --all removes live records.
    assert "purged 0 record(s)" in d.db("purge").stdout
    assert "purged 2 record(s)" in d.db("purge", "--all").stdout
    assert redis_server.keys() == []
    # load puts the dump back, TTLs included.
    assert "loaded 2 record(s)" in d.db("load", input=dump).stdout
    assert len(redis_server.keys("greyspf:t:*")) == 2
    assert is_defer(c.request(retry(b)))  # still pending, not Initial
    assert any(m.startswith("Pending greylisting") for m in d.msgs()[-3:])


def test_db_on_hashed_keys_shows_digests(daemon, redis_server):
    d = mx(daemon, redis_server, "mx", hashed=True, greylist={"delay": "5m"})
    a = req(client="192.0.2.10", sender="alice@example.net",
            recipient="bob@example.org")
    assert is_defer(d.client().request(a))
    keys = redis_server.keys()
    assert all("@" not in k and "192.0.2" not in k for k in keys), keys
    listing = d.db("list")
    assert "alice" not in listing.stdout
    assert "1 record(s)" in listing.stderr
    dump = d.db("dump").stdout
    rec = json.loads(dump)
    assert re.fullmatch(r"[0-9a-f]{64}", rec["key"])
    # A dump of hashed keys loads back under the same digests.
    d.db("purge", "--all")
    assert "loaded 1 record(s)" in d.db("load", input=dump).stdout
    assert redis_server.keys() == keys
    assert is_defer(d.client().request(retry(a)))
    assert any(m.startswith("Pending greylisting") for m in d.msgs()[-2:])


def test_redis_prefix_and_database(daemon, redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/5"
    d = daemon(name="mx", user=None, top={"checks": "greylist"},
               store={"backend": "redis", "redis": url,
                      "redis_prefix": "mx1:"})
    assert d.client().request(req()) == DEFER1
    assert redis_server.keys() == []  # database 0 is untouched
    out = redis_server.cli("-n", "5", "--scan")
    assert out.startswith("mx1:t:")


def test_spawn_mode_shares_the_greylist(daemon, spawn, redis_server):
    """`greyspf policy` (one process per Postfix connection) on the same
    Redis as a daemon: what one defers, the other knows."""
    d = mx(daemon, redis_server, "mx")
    p = spawn(d.conf)
    first = req(client="192.0.2.10", sender="alice@example.net",
                recipient="bob@example.org")
    assert p.request(first) == DEFER1
    early = retry(first)
    assert d.client().request(early) == DEFER1
    assert any(m.startswith(logline("Pending greylisting", early) + ";")
               for m in d.msgs())
    time.sleep(1.1)
    assert p.request(retry(first)) == "DUNNO"
