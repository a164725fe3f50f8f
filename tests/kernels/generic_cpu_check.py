"""The fused LSTM step compiled for a generic x86-64 (NUMBA_CPU_NAME=generic: no AVX-512, so
the reciprocal estimate is not used and the 16-wide vectors are split by LLVM) still
matches the reference: what a machine without AVX-512 runs. Prints one JSON line,
{"name": "generic cpu", "ok", "detail"}.

Run by tests/kernels/test_lstm_fused.py, started in the background when the suite has
collected its tests (tests/conftest.py): it compiles the fused kernels afresh, for another
CPU, into a cache folder of its own.

    python tests/kernels/generic_cpu_check.py
"""

import os
import sys
import tempfile
from pathlib import Path

CACHE = tempfile.TemporaryDirectory()
# numba reads these when it is imported, just below
os.environ.update(NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=CACHE.name)
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

import numpy as np  # noqa: E402
from report import report  # noqa: E402


def check() -> None:
    from kernels import reference as ref
    from kernels.test_lstm_fused import _case
    from rnndsl.kernels.cpu import lstm_fused
    from rnndsl.kernels.cpu.lstm import lstm_forward

    assert not lstm_fused.FAST_RECIPROCAL
    X, W, U, b, h0, c0 = _case(4, 11, 6, 13)
    want = ref.lstm(X.astype(np.float64) @ W + b, U, h0, c0)[0]
    out = lstm_forward(None, U, h0, c0, keep=False, X=X, W=W, b_in=b)[0]
    np.testing.assert_allclose(out, want, atol=1e-5)


def main() -> int:
    status = report("generic cpu", lambda: check() or {})
    CACHE.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
