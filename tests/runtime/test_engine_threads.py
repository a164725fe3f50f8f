"""Small recurrent products run with one BLAS thread in every loaded BLAS (NumPy's and SciPy's)."""

import numpy as np

import rnndsl


def test_small_models_use_one_blas_thread_everywhere():
    from threadpoolctl import threadpool_info

    m = rnndsl.compile("input x: float[?, 3]\noutput x | lstm(8) | dense(2)")
    m.predict(np.zeros((4, 5, 3)))
    blas = [d for d in threadpool_info() if d["user_api"] == "blas"]
    assert blas and all(d["num_threads"] == 1 for d in blas), blas


def test_train_steps_reuse_their_arrays():
    """After the first steps, a train step touches no fresh pages: its large arrays come back
    from the executor's pool (kernels/cpu/buffers.py) instead of new allocations."""
    import resource

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
    assert faults < 40, faults        # ~600 a step with fresh arrays


def test_pool_hands_back_released_arrays_only():
    from rnndsl.kernels.cpu import buffers

    pool = buffers.Pool()
    with buffers.reusing(pool):
        a = buffers.empty((3, 4), np.float32)
        b = buffers.empty((3, 4), np.float32)
        assert a is not b
    assert buffers.empty((3, 4), np.float32) is not a          # outside a step: plain np.empty
    with buffers.reusing(pool):
        c = buffers.zeros((3, 4), np.float32)
        assert c is a or c is b
        assert not c.any()
        assert buffers.empty((3, 4), np.float64) is not a       # another dtype: a new array
    with buffers.reusing(pool):
        pass
    assert not pool.free        # what a step did not use is dropped
