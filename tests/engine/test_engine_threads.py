"""Small recurrent products run with one BLAS thread in every loaded BLAS (NumPy's and SciPy's)."""

import numpy as np

import rnndsl


def test_small_models_use_one_blas_thread_everywhere():
    from threadpoolctl import threadpool_info

    m = rnndsl.compile("input x: float[?, 3]\noutput x | lstm(8) | dense(2)")
    m.predict(np.zeros((4, 5, 3)))
    blas = [d for d in threadpool_info() if d["user_api"] == "blas"]
    assert blas and all(d["num_threads"] == 1 for d in blas), blas
