from pathlib import Path

import numpy as np
import pytest

from rnndsl.data import digits_path, get_dataset, load_digits, train_test_split
from rnndsl.errors import DataError


def test_digits_shapes_values_and_labels():
    x, y = load_digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    # values are k/16 for integer pixels k
    np.testing.assert_array_equal(x * 16, np.round(x * 16))
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert y[:10].tolist() == list(range(10))
    assert int(np.round(x * 16).sum()) == 561718
    # a zero: the centre of the image is dark, the ring is bright
    zeros = x[y == 0].mean(0)
    assert zeros[3:5, 3:5].mean() < zeros[1:7, 1:7].mean()


def test_digits_path_prefers_installed_copy(tmp_path, monkeypatch):
    import rnndsl.data.digits as dg

    assert digits_path().name == "digits.npz"
    pkg = tmp_path / "site" / "rnndsl"
    (pkg / "datasets").mkdir(parents=True)
    monkeypatch.setattr(dg, "_PACKAGE", pkg)
    with pytest.raises(DataError, match="digits.npz not found"):
        load_digits()
    src = Path(dg.__file__).resolve().parents[2] / "examples" / "data" / "digits.npz"
    (pkg / "datasets" / "digits.npz").write_bytes(src.read_bytes())
    assert digits_path() == pkg / "datasets" / "digits.npz"
    assert load_digits()[0].shape == (1797, 8, 8)


def test_registry_digits():
    x, y = get_dataset("digits")
    assert len(x) == 1797


def test_train_test_split():
    x = np.arange(50).reshape(25, 2)
    y = np.arange(25)
    xtr, xte, ytr, yte = train_test_split(x, y, 0.2, seed=3)
    assert len(xte) == 5 and len(xtr) == 20
    np.testing.assert_array_equal(xtr[:, 0] // 2, ytr)  # rows stay paired
    assert sorted(np.concatenate([ytr, yte]).tolist()) == list(range(25))
    again = train_test_split(x, y, 0.2, seed=3)
    np.testing.assert_array_equal(again[3], yte)
    with pytest.raises(DataError):
        train_test_split(x, y[:3], 0.2)
    with pytest.raises(DataError):
        train_test_split(x, y, 1.5)
