"""The fused LSTM and GRU steps compiled for a generic x86-64 (NUMBA_CPU_NAME=generic: no AVX-512, so
the reciprocal estimate is not used and the 16-wide vectors are split by LLVM) still
match the reference: what a machine without AVX-512 runs. Prints one JSON line,
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
    # the GRU's step: the same tiles, GRU's epilogue
    from kernels.test_gru_fused import _case as gru_case
    from rnndsl.kernels.cpu.gru import gru_forward
    X, W, U, b_in, b_rec, h0 = gru_case(4, 11, 6, 13, seed=1)
    want = ref.gru(X @ W + b_in, U, h0, b_rec=b_rec)[0]
    f32 = [a.astype(np.float32) for a in (X, W, U, b_in, b_rec, h0)]
    out = gru_forward(None, f32[2], f32[5], b_rec=f32[4], X=f32[0], W=f32[1], b_in=f32[3], keep=False)[0]
    np.testing.assert_allclose(out, want, atol=2e-5)


def main() -> int:
    status = report("generic cpu", lambda: check() or {})
    CACHE.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
