"""Scripts the suite runs in the background, beside its own work, and the reports they print.

Some checks are whole programs in subprocesses: the CUDA engine's cases under numba's
simulator (numba reads NUMBA_ENABLE_CUDASIM once, at import, and the pytest process has
imported numba already), and the packaging check (build a wheel, install it, run it from
elsewhere: a first run, compiling from the installed copy). Each prints one JSON line per
case. They are mostly single-core bound, so the suite starts them as soon as it has
collected its tests (tests/conftest.py), niced, and they run on the core its own work,
mostly single-threaded, leaves; the tests that read them are sorted last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rnndsl


# the runs the suite starts early (start), by script
_running: dict = {}


def start(script: Path, shards: int = 1, nice: int = 0, simulator: bool = True) -> None:
    """Start the script's shards now, in the background (`--shard k/shards`), under numba's
    CUDA simulator unless simulator=False. With nice > 0 they yield the cores to the suite's
    own work and use what it leaves."""
    script = Path(script).resolve()
    if script in _running:
        return
    package_root = str(Path(rnndsl.__file__).resolve().parent.parent)   # the rnndsl this process tests
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    lower = (lambda: os.nice(nice)) if nice and hasattr(os, "nice") else None
    _running[script] = [subprocess.Popen([sys.executable, str(script), "--shard", f"{k}/{shards}"], env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         preexec_fn=lower)
                        for k in range(1, shards + 1)]


def collect(script: Path, shards: int = 1, timeout: int = 900, simulator: bool = True) -> tuple[dict, str]:
    """(case name -> report, the subprocesses' stderr), from the run start began (or one
    begun now)."""
    script = Path(script).resolve()
    start(script, shards, simulator=simulator)
    procs = _running.pop(script)
    reports, errors = {}, []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        errors.append(err)
        for line in out.splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                reports[rec["name"]] = rec
    return reports, "\n".join(errors)


def stop_all() -> None:
    """Kill the runs nobody collected (a suite stopped early, or their tests deselected)."""
    for procs in _running.values():
        for p in procs:
            p.kill()
            p.communicate()
    _running.clear()


def reports_of(script: Path, shards: int = 1, simulator: bool = True) -> tuple[dict, str]:
    """collect's (reports, stderr), failing the test when the run reported nothing."""
    reports, stderr = collect(script, shards, simulator=simulator)
    if not reports:
        pytest.fail(f"{Path(script).name} reported nothing:\n{stderr[-4000:]}")
    return reports, stderr


def check_case(run: tuple[dict, str], name: str) -> None:
    """One case's report holds: it reported, and passed (or skipped, with its reason)."""
    reports, stderr = run
    rec = reports.get(name)
    assert rec is not None, f"case {name!r} did not report; the run stopped early:\n{stderr[-4000:]}"
    if rec.get("skipped"):
        pytest.skip(rec["detail"])
    assert rec["ok"], rec["detail"]
