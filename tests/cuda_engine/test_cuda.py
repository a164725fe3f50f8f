"""The CUDA engine (rnndsl/runtime/cuda) against the CPU engine, under numba's CUDA simulator.

numba reads NUMBA_ENABLE_CUDASIM once, when it is imported, and this pytest
process has imported numba already; so every case of cases.py runs in one
subprocess started with the variable set, and each case here checks that
subprocess's report line. On a GPU machine run cases.py directly instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import rnndsl
from cuda_engine import cases       # the case table: importing it touches no numba.cuda
from background import check_case, reports_of
from rnndsl import DeviceError
from rnndsl.runtime import cuda_available, resolve_device

HERE = Path(__file__).parent

NAMES = list(cases.cases())
SHARDS = 2


@pytest.fixture(scope="module")
def simulated():
    """name -> report of every case, run once under the simulator."""
    return reports_of(HERE / "cases.py", SHARDS)


@pytest.mark.parametrize("name", NAMES)
def test_cuda_equals_cpu(simulated, name):
    check_case(simulated, name)


def test_device_cuda_without_a_gpu_names_the_simulator():
    if cuda_available():
        pytest.skip("a CUDA GPU (or the simulator) is visible to this process")
    with pytest.raises(DeviceError, match="NUMBA_ENABLE_CUDASIM=1"):
        rnndsl.compile("input x: float[?, 2]\noutput x | lstm(2) | dense(2)", device="cuda")
    with pytest.raises(DeviceError, match="NUMBA_ENABLE_CUDASIM=1"):
        rnndsl.compile("input x: float[?, 2]\noutput x | lstm(2) | dense(2)").to("cuda")


def test_auto_device_is_cpu_without_a_gpu():
    if cuda_available():
        pytest.skip("a CUDA GPU (or the simulator) is visible to this process")
    assert resolve_device("auto") == "cpu"
    assert rnndsl.compile("input x: float[?, 2]\noutput x | gru(2)", device="auto").device == "cpu"


def test_cuda_engine_imports_without_a_gpu():
    """Importing the engine compiles nothing: kernels are built on first use."""
    from rnndsl.runtime.cuda import CudaExecutor  # noqa: F401
    from rnndsl.runtime import _cuda_backend

    assert _cuda_backend()


def test_a_broken_cuda_engine_import_is_raised_not_reported_as_no_engine(monkeypatch):
    """Only numba.cuda failing to import means "no CUDA engine"; an ImportError inside rnndsl is a bug."""
    import sys

    import rnndsl.runtime as runtime

    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    monkeypatch.delattr(runtime, "cuda", raising=False)
    for name in [m for m in sys.modules if m == "rnndsl.runtime.cuda" or m.startswith("rnndsl.runtime.cuda.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rnndsl.runtime.cuda.layers", None)   # import of it raises ImportError
    with pytest.raises(ImportError, match="rnndsl.runtime.cuda.layers"):
        resolve_device("cuda")
    with pytest.raises(ImportError, match="rnndsl.runtime.cuda.layers"):
        resolve_device("auto")


def test_device_cuda_without_numba_cuda_says_so(monkeypatch):
    import sys

    import numba

    import rnndsl.runtime as runtime

    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    monkeypatch.delattr(numba, "cuda", raising=False)
    monkeypatch.setitem(sys.modules, "numba.cuda", None)
    with pytest.raises(DeviceError, match="numba.cuda"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"
