"""What the README's first command relies on: the example configuration
validates, and the daemon creates a store path with missing parents."""

import subprocess

from helpers import BIN, REPO, req

DEFER1 = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 1 seconds"


def test_example_configuration_validates():
    r = subprocess.run([BIN, "config", "-c",
                        str(REPO / "packaging" / "greyspf.conf")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert "\nchecks = spf, greylist\n" in r.stdout
    assert "\nlisten = inet:127.0.0.1:10023\n" in r.stdout


def test_store_path_parents_are_created(daemon, workdir):
    path = workdir / "var" / "lib" / "greyspf"
    d = daemon(store={"path": str(path)})
    assert d.client().request(req(client="192.0.2.71")) == DEFER1
    assert (path / "data.mdb").exists()
    assert oct(path.stat().st_mode & 0o777) == "0o750"
    assert oct((workdir / "var").stat().st_mode & 0o777) == "0o755"
