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
    where = {_address(a), _address(b)}
    kept = a
    del a, b
    with buffers.reusing(pool):
        c = buffers.zeros((3, 4), np.float32)
        assert _address(c) in where and c is not kept             # one the test still holds is not handed out
        assert not c.any()
        assert buffers.empty((3, 4), np.float64).dtype == np.float64   # another dtype: a new array
    del c
    with buffers.reusing(pool):
        pass
    assert not pool.held        # what a step did not use is dropped


def _address(a) -> int:
    return a.__array_interface__["data"][0]


def test_pool_hands_a_spent_array_on_within_the_step():
    """An array nothing holds any more (not even a view) serves the step's next request of its
    shape; a large request takes the front of the smallest spent array that fits."""
    from rnndsl.kernels.cpu import buffers

    pool = buffers.Pool()
    with buffers.reusing(pool):
        a = buffers.empty((3, 4), np.float32)
        where = _address(a)
        view = a.reshape(12)
        del a
        b = buffers.empty((3, 4), np.float32)
        assert _address(b) != where                      # a view still held it
        del view
        c = buffers.empty((3, 4), np.float32)
        assert _address(c) == where                      # spent: handed on
        big, mid = buffers.empty((100_000,), np.float32), buffers.empty((50_000,), np.float32)
        at_big, at_mid = _address(big), _address(mid)
        del big, mid
        front = buffers.empty((200, 100), np.float32)    # 80 kB: the front of the 200 kB one
        assert _address(front) == at_mid and front.shape == (200, 100) and front.flags.c_contiguous
        second = buffers.empty((300, 100), np.float32)   # mid is lent: the 400 kB one
        assert _address(second) == at_big
        del front
        small = buffers.empty((10, 10), np.float32)      # under MIN_FIT_BYTES: its own array
        assert _address(small) != at_mid
    assert len(pool.held) == 5                           # a, b, big, mid, small: the views are not the pool's


def test_a_train_step_holds_what_is_alive_at_once():
    """The pool of bench's attn-seq2seq's train step holds less than the step asks for (its
    backward's arrays go into the forward's spent ones), and steps after the first take
    nothing new."""
    import gc

    from rnndsl.kernels.cpu import buffers

    asked = []
    empty = buffers.Pool.empty

    def counting(self, shape, dtype):
        asked.append(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        return empty(self, shape, dtype)

    m = rnndsl.compile("input src: int[20]\ninput tgt: int[20]\n"
                       "enc = src | embed(1000, 64) | lstm(64, seq, state)\n"
                       "dec = tgt | embed(2000, 64) | lstm(64, seq, initial_state=enc.state)\n"
                       "ctx = attention(dec, enc)\noutput concat(dec, ctx) | dense(10)\n", dtype="float32")
    m.configure(loss="sparse_categorical_crossentropy", optimizer="sgd")
    rng = np.random.default_rng(0)
    x, y = [rng.integers(0, 1000, (64, 20)), rng.integers(0, 2000, (64, 20))], rng.integers(0, 10, (64, 20))
    pool = m.executor.pool
    held = []
    for step in range(4):
        asked.clear()
        buffers.Pool.empty = counting
        try:
            m.train_on_batch(x, y)
        finally:
            buffers.Pool.empty = empty
        held.append({id(a): a.nbytes for a in pool.held})
        # a first step that compiled left reference cycles (numba's typing keeps frames and
        # their arguments in tracebacks): the arrays they hold are not spent until collected
        gc.collect()
    assert held[0] == held[1] == held[2] == held[3]       # the same arrays, step after step
    assert sum(held[3].values()) < 0.9 * sum(asked)      # 0.86; 1 where every request has its own array


def test_a_finished_fit_keeps_no_train_step_arrays():
    """After fit the pool holds nothing (a model kept for prediction does not keep a train
    step's memory); the next fit makes its arrays again and trains as before."""
    import rnndsl

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5, 3)).astype(np.float32), rng.integers(0, 2, 40)
    m = rnndsl.compile("input x: float[5, 3]\noutput x | lstm(8) | dense(2)\n", seed=1)
    m.configure(loss="sparse_categorical_crossentropy", optimizer="sgd")
    pool = m.executor.pool
    m.train_on_batch(x, y)
    assert pool.held                                  # train_on_batch keeps them for the next step
    h1 = m.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    assert pool.held == [] and pool.plan == []
    h2 = m.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    assert pool.held == [] and np.isfinite(h2.history["loss"][0]) and h2.history["loss"][0] != h1.history["loss"][0]
