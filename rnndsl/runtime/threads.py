"""How many threads the BLAS libraries use, chosen by the size of the products at hand.

NumPy and SciPy each load their own OpenBLAS with its own thread pool; numba's
np.dot reaches SciPy's. On a small machine two pools of spinning threads fight
over the cores, and a recurrent step's product (batch x units x gates*units)
is too small to gain from a second thread: measured on the 2-core machines
here, a 6-step lstm(128) train step at batch 64 took 5.9 ms with one thread
per pool and 55 ms with two while another process was busy. Large products
(big batches and wide layers) still gain from every core, so the count is
chosen per call from the largest per-step product.
"""

from __future__ import annotations

import os

# per-step multiply-adds above which a second thread pays (a 128 x 512 x 2048 product is 134M)
PARALLEL_MACS = int(os.environ.get("RNNDSL_PARALLEL_MACS", 32 * 1024 * 1024))

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


def use_threads(n: int) -> None:
    """Set every loaded BLAS to n threads (no-op when already there)."""
    global _current
    if n == _current:
        return
    libs = _libs()
    if libs:
        libs.limit(limits=n)
    _current = n


def threads_for(macs_per_step: int) -> int:
    if os.environ.get("RNNDSL_BLAS_THREADS"):
        return int(os.environ["RNNDSL_BLAS_THREADS"])
    return (os.cpu_count() or 1) if macs_per_step >= PARALLEL_MACS else 1
