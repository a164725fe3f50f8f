"""Custom cells (rnn(cell(...))) on the CUDA engine against the CPU engine, under numba's simulator.

numba reads NUMBA_ENABLE_CUDASIM once, at import, and this process has imported
numba already: cuda_cases.py runs every case in two subprocesses (shards) with the
variable set, and each test here checks one case's report line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cells import cuda_cases as cases    # the case table: importing it touches no numba.cuda
from background import check_case, reports_of

HERE = Path(__file__).parent

NAMES = cases.cases()
SHARDS = 2


@pytest.fixture(scope="module")
def simulated():
    """name -> report of every case, run once under the simulator."""
    return reports_of(HERE / "cuda_cases.py", SHARDS)


@pytest.mark.parametrize("name", NAMES)
def test_cell_cuda_equals_cpu(simulated, name):
    check_case(simulated, name)


def test_cli_cell_cuda_prints_the_generated_source(tmp_path):
    spec = tmp_path / "mgu.rnn"
    spec.write_text(cases.MGU + "input x: float[?, 2]\noutput x | rnn(mgu(3)) | dense(3)\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "rnndsl", "cell", str(spec), "--cuda"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "@cuda.jit" in r.stdout and "def bwd2(" in r.stdout and "def handoff(" in r.stdout
