"""Small recurrent products run with one BLAS thread in every loaded BLAS (NumPy's and SciPy's)."""

import numpy as np

import rnndsl


def test_small_models_use_one_blas_thread_everywhere():
    from threadpoolctl import threadpool_info

    m = rnndsl.compile("input x: float[?, 3]\noutput x | lstm(8) | dense(2)")
    m.predict(np.zeros((4, 5, 3)))
    blas = [d for d in threadpool_info() if d["user_api"] == "blas"]
    assert blas and all(d["num_threads"] == 1 for d in blas), blas


def test_train_steps_reuse_freed_memory():
    """After the first steps, a train step touches no fresh pages: malloc keeps the freed
    activations of one step for the next (runtime/memory.py; glibc only)."""
    import resource
    import sys

    import pytest

    from rnndsl.runtime.memory import keep_freed_memory

    if not sys.platform.startswith("linux") or not keep_freed_memory():
        pytest.skip("malloc tuning needs glibc")
    m = rnndsl.compile("input x: float[20, 16]\noutput x | lstm(64) | dense(10)", dtype="float32")
    m.configure(loss="sparse_categorical_crossentropy", optimizer="sgd")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 20, 16)).astype(np.float32), rng.integers(0, 10, 64)
    for _ in range(5):
        m.train_on_batch(x, y)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        m.train_on_batch(x, y)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
    assert faults < 40, faults        # ~600 a step without the tuning


def test_malloc_tuning_can_be_turned_off():
    import subprocess
    import sys

    code = "from rnndsl.runtime.memory import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "RNNDSL_MALLOC_TUNING": "0"}, check=True)
    assert out.stdout.strip() == "False"
