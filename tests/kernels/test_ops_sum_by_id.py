"""sum_rows_by_id (kernels/cpu/ops.py): a row gather's backward, each table row summed by one
core from the rows in id order, against np.add.at in float64."""

import numpy as np
import pytest

from rnndsl.kernels.cpu.ops import sum_rows_by_id


@pytest.mark.parametrize("n,V,G", [(0, 3, 4), (1, 1, 5), (37, 5, 7), (200, 64, 33), (9, 40, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_rows_by_id_matches_add_at(forced_split, n, V, G, dtype):
    rng = np.random.default_rng(n + V)
    ids = rng.integers(0, max(1, V // 2), n)          # rows past V // 2 read by no id: zero
    d = rng.normal(size=(n, G)).astype(dtype)
    want = np.zeros((V, G))
    np.add.at(want, ids, d.astype(np.float64))

    def run():
        return sum_rows_by_id(ids, d, np.full((V, G), np.nan, dtype))

    for got in forced_split(run):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
