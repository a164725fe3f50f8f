"""Arrays from files: .npz / .npy (no pickle) and numeric CSV."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from rnndsl.errors import DataError, did_you_mean

__all__ = ["load_arrays", "load_csv"]


def _existing_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"data path {path} is not a file")
    return path


def load_arrays(path, x_key: str = "x", y_key: str | None = "y"):
    """``(x, y)`` from an .npz (arrays ``x_key``, ``y_key``; y_key=None gives
    y = None) or from an .npy (its single array as x, y = None)."""
    path = _existing_file(path)
    with open(path, "rb") as f:
        head = f.read(6)
    if not (head.startswith(b"PK") or head.startswith(b"\x93NUMPY")):
        raise DataError(f"{path} is not a NumPy .npy/.npz file"
                        + (" (it is empty)" if not head else ""))
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(f"{path} holds pickled Python objects; only numeric arrays are read") from None
        raise DataError(f"{path} is not a NumPy .npy/.npz file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path}: truncated or corrupt ({e})") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded as z:
        keys = list(z.files)

        def get(key):
            if key not in keys:
                hint = did_you_mean(key, keys)
                raise DataError(f"{path} has no array '{key}' (it has: {', '.join(keys) or 'none'})"
                                + (f"; {hint}" if hint else ""))
            try:
                return z[key]
            except ValueError as e:
                raise DataError(f"{path}: array '{key}' cannot be read without pickle ({e})") from None
            except (OSError, EOFError, zipfile.BadZipFile) as e:
                raise DataError(f"{path}: array '{key}' is truncated or corrupt ({e})") from None

        x = get(x_key)
        y = get(y_key) if y_key is not None else None
    if y is not None and len(y) != len(x):
        raise DataError(f"{path}: '{x_key}' has {len(x)} samples but '{y_key}' has {len(y)}")
    return x, y


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_csv(path, label_column: int | None = -1, skip_header="auto", delimiter: str = ",",
             dtype=np.float32):
    """Numeric CSV -> ``(x (N, F), y (N,))``; y is column ``label_column`` (None:
    no labels, y = None), int64 when all labels are whole numbers. skip_header:
    True, False, or "auto" (skip the first row when a field is not a number).
    Blank lines are ignored; a bad field raises DataError naming path:line."""
    path = _existing_file(path)
    rows: list[list[float]] = []
    ncols = None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for row in reader:
                lineno = reader.line_num
                fields = [c.strip() for c in row]
                if not fields or all(c == "" for c in fields):
                    continue
                if ncols is None and (skip_header is True or (
                        skip_header == "auto" and not all(_is_number(c) for c in fields))):
                    ncols = len(fields)  # the header fixes the column count
                    skip_header = False
                    continue
                if ncols is None:
                    ncols = len(fields)
                elif len(fields) != ncols:
                    raise DataError(f"{path}:{lineno}: expected {ncols} columns, found {len(fields)}")
                values = []
                for j, c in enumerate(fields):
                    try:
                        values.append(float(c))
                    except ValueError:
                        raise DataError(f"{path}:{lineno}: column {j + 1}: cannot read {c!r} "
                                        f"as a number") from None
                rows.append(values)
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not a UTF-8 text file ({e})") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV ({e})") from None
    if not rows:
        raise DataError(f"{path} holds no data rows")
    data = np.array(rows, dtype=np.float64)
    if label_column is None:
        return data.astype(dtype), None
    if not -ncols <= label_column < ncols:
        raise DataError(f"label_column {label_column} is out of range for {ncols} columns in {path}")
    col = label_column % ncols
    y = data[:, col]
    x = np.delete(data, col, axis=1).astype(dtype)
    if np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return x, y
