"""BLAS runs one thread per pool; rnndsl spreads work over the cores itself.

NumPy and SciPy each load their own OpenBLAS with its own thread pool, and
numba's np.dot reaches SciPy's. On a small machine two pools of spinning
threads fight over the cores (bench/README.md, "Measurements behind the
code"), and a recurrent step's product is too small to gain from a second
thread anyway. rnndsl instead splits its kernels by batch rows and its large
products by rows across the cores (rnndsl.kernels.cpu.parallel), so BLAS is
held at one thread. RNNDSL_BLAS_THREADS overrides it.
"""

from __future__ import annotations

import os

_controller = None
_current: int | None = None


def _libs():
    global _controller
    if _controller is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (numba's np.dot BLAS: load it so it is seen)
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController().select(user_api="blas")
        except Exception:  # noqa: BLE001 - without threadpoolctl the libraries keep their defaults
            _controller = False
    return _controller


def use_threads(n: int | None = None) -> None:
    """Set every loaded BLAS to n threads (default: 1, or RNNDSL_BLAS_THREADS); no-op when already there."""
    global _current
    if n is None:
        n = int(os.environ.get("RNNDSL_BLAS_THREADS", 1))
    if n == _current:
        return
    libs = _libs()
    if libs:
        libs.limit(limits=n)
    _current = n
