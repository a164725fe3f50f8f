"""Run a case script under numba's CUDA simulator and collect its report lines.

numba reads NUMBA_ENABLE_CUDASIM once, at import, and the pytest process has
imported numba already: so the cases run in subprocesses started with the
variable set, each printing one JSON line per case. The simulator is slow (one
Python thread per CUDA thread) and single-core bound, so the cases are split
into shards that run at once, one per core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import rnndsl


def run_simulated(script: Path, shards: int = 2, timeout: int = 600) -> tuple[dict, str]:
    """(case name -> report, the subprocesses' stderr)."""
    package_root = str(Path(rnndsl.__file__).resolve().parent.parent)   # the rnndsl this process tests
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    procs = [subprocess.Popen([sys.executable, str(script), "--shard", f"{k}/{shards}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(1, shards + 1)]
    reports, errors = {}, []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        errors.append(err)
        for line in out.splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                reports[rec["name"]] = rec
    return reports, "\n".join(errors)
