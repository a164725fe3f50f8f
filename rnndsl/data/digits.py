"""The 8x8 handwritten digits (UCI optdigits test set as shipped by scikit-learn,
CC BY 4.0; see examples/data/README.md), and a train/test split helper."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnndsl.errors import DataError

__all__ = ["load_digits", "digits_path", "train_test_split", "N_DIGITS"]

N_DIGITS = 1797

_PACKAGE = Path(__file__).resolve().parent.parent  # .../rnndsl


def _candidates() -> list[Path]:
    # An installed wheel carries the file inside the package (as datasets/ or
    # with the force-included examples/); a source checkout has it under
    # examples/data at the repository root.
    return [_PACKAGE / "datasets" / "digits.npz",
            _PACKAGE / "examples" / "data" / "digits.npz",
            _PACKAGE.parent / "examples" / "data" / "digits.npz"]


def digits_path() -> Path:
    """Where digits.npz is found: rnndsl/datasets/, rnndsl/examples/data/ (wheel),
    then <repo>/examples/data/ (checkout)."""
    for p in _candidates():
        if p.is_file():
            return p
    raise DataError("digits.npz not found; looked in: " + ", ".join(str(p) for p in _candidates()))


def load_digits():
    """``(x, y)``: x float32 (1797, 8, 8) = pixels / 16 in [0, 1], to be read as
    8 time steps (image rows) of 8 features; y int64 (1797,) digits 0..9."""
    path = digits_path()
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except (KeyError, ValueError, OSError, EOFError) as e:
        raise DataError(f"{path} is damaged ({e}); reinstall rnndsl") from None
    if x.shape != (N_DIGITS, 8, 8) or y.shape != (N_DIGITS,):
        raise DataError(f"{path} is damaged: shapes {x.shape}, {y.shape}")
    return (x.astype(np.float32) / np.float32(16.0)), y.astype(np.int64)


def train_test_split(x, y, test_fraction: float = 0.2, seed: int = 0):
    """Shuffle with ``seed`` and split: ``(x_train, x_test, y_train, y_test)``
    (scikit-learn's order); the test part has ceil(N * test_fraction) samples."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} samples but y has {len(y)}")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    n = len(x)
    n_test = math.ceil(n * test_fraction)
    if n_test >= n:
        raise DataError(f"test_fraction {test_fraction} leaves no training samples out of {n}")
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return x[train], x[test], y[train], y[test]
