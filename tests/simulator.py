"""Run a case script under numba's CUDA simulator and collect its report lines.

numba reads NUMBA_ENABLE_CUDASIM once, at import, and the pytest process has
imported numba already: so the cases run in subprocesses started with the
variable set, each printing one JSON line per case. The simulator is slow (one
Python thread per CUDA thread) and single-core bound, so the cases are split
into shards that run at once, one per core, and the suite starts them as soon as
it has collected its tests (tests/conftest.py), so that they run beside the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import rnndsl


# the simulator runs the suite starts early (start_simulated), by script
_running: dict = {}


def start_simulated(script: Path, shards: int = 2, nice: int = 0) -> None:
    """Start the script's shards now, in the background: the simulator is single-core bound
    Python, so its minute of work overlaps the rest of the suite instead of adding to it.
    With nice > 0 the shards yield the cores to the suite's own work, which is mostly
    single-threaded, and use what it leaves."""
    script = Path(script).resolve()
    if script in _running:
        return
    package_root = str(Path(rnndsl.__file__).resolve().parent.parent)   # the rnndsl this process tests
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    lower = (lambda: os.nice(nice)) if nice and hasattr(os, "nice") else None
    _running[script] = [subprocess.Popen([sys.executable, str(script), "--shard", f"{k}/{shards}"], env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         preexec_fn=lower)
                        for k in range(1, shards + 1)]


def run_simulated(script: Path, shards: int = 2, timeout: int = 900) -> tuple[dict, str]:
    """(case name -> report, the subprocesses' stderr), from the run start_simulated began
    (or one begun now)."""
    script = Path(script).resolve()
    start_simulated(script, shards)
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


def stop_simulated() -> None:
    """Kill the runs nobody collected (a suite stopped early, or their tests deselected)."""
    for procs in _running.values():
        for p in procs:
            p.kill()
            p.communicate()
    _running.clear()
