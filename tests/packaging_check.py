"""Build a wheel of this checkout, install it into a folder of its own and run it from
another directory; prints one JSON line: {"name": "packaging", "ok", "skipped", "detail"}.

Run by tests/test_packaging.py, started in the background when the suite has collected
its tests (tests/conftest.py): the run from the installed copy compiles its kernels afresh
(numba's cache is per source file), a first run's worth of single-core work.

    python tests/packaging_check.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from report import report

ROOT = Path(__file__).resolve().parents[1]


def check(tmp: Path) -> str | None:
    """None when every check holds; raises AssertionError naming the first that does not;
    returns the reason to skip when no wheel can be built here."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp), str(ROOT)],
                           capture_output=True, text=True)
    if build.returncode != 0:
        return f"cannot build a wheel here (no network for hatchling?): {build.stderr[-300:]}"
    wheel = next(tmp.glob("rnndsl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "rnndsl/grammar/rnn.lark" in names
    assert "rnndsl/examples/digits.rnn" in names
    assert "rnndsl/examples/data/digits.npz" in names
    # installed into a folder of its own, run by this interpreter with that folder first on
    # its path: it sees the packages this test run sees (a venv, a conda environment, the
    # system's), where a new venv would see only the base interpreter's
    target = tmp / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([sys.executable, "-c", "import rnndsl, sys; print(rnndsl.__file__)"], cwd=elsewhere,
                       capture_output=True, text=True, env=env)
    assert str(target) in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "rnndsl", "summary"], cwd=elsewhere, capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert "Total params: 19,370" in r.stdout
    r = subprocess.run([sys.executable, "-m", "rnndsl", "run", "--epochs", "1", "--quiet", "--out", "c.npz"],
                       cwd=elsewhere, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "test_accuracy" in r.stdout
    return None


def main() -> int:
    def run():
        with tempfile.TemporaryDirectory() as tmp:
            reason = check(Path(tmp))
        return {"skipped": reason is not None, "detail": reason or ""}

    return report("packaging", run)


if __name__ == "__main__":
    sys.exit(main())
