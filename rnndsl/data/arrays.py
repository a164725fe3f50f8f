"""Arrays from files: .npz / .npy (no pickle) and numeric CSV."""

from __future__ import annotations

import csv

import numpy as np

from ..errors import DataError, did_you_mean

from .npyfile import NpzReader, file_head, read_npy
from .options import check_csv_format, existing_file, is_number
from .series import SERIES_OPTIONS, check_series_options, given, load_csv_windows

__all__ = ["load_arrays", "load_csv", "load_named_arrays"]


def load_arrays(path, x_key: str = "x", y_key: str | None = "y"):
    """``(x, y)`` from an .npz (arrays ``x_key``, ``y_key``; y_key=None gives
    y = None) or from an .npy (its single array as x, y = None).

    Only those members are read, each checked before it is made (numeric dtype,
    declared size against the file and the memory bound: see npyfile.py); never pickle."""
    path = existing_file(path)
    for name, key in (("x_key", x_key), ("y_key", y_key)):
        if not (isinstance(key, str) or (key is None and name == "y_key")):
            raise DataError(f"{name} must be the name of an array in {path.name}, got {key!r}")
    head = file_head(path, DataError)
    if not (head.startswith(b"PK") or head.startswith(b"\x93NUMPY")):
        raise DataError(f"{path} is not a NumPy .npy/.npz file"
                        + (" (it is empty)" if not head else ""))
    if head.startswith(b"\x93NUMPY"):
        return read_npy(path), None
    with NpzReader(path, DataError) as z:
        keys = z.names

        def get(key):
            if key not in z:
                hint = did_you_mean(key, keys)
                raise DataError(f"{path} has no array '{key}' (it has: {', '.join(keys) or 'none'})"
                                + (f"; {hint}" if hint else ""))
            return z.read(key)

        x = get(x_key)
        y = get(y_key) if y_key is not None else None
    if x.ndim == 0:
        raise DataError(f"{path}: '{x_key}' is a single number, not an array of samples")
    if y is not None and (y.ndim == 0 or len(y) != len(x)):
        raise DataError(f"{path}: '{x_key}' has {len(x)} samples but '{y_key}' has "
                        f"{len(y) if y.ndim else 'none (it is a single number)'}")
    return x, y


def load_named_arrays(path, inputs: list[str], outputs: list[str]):
    """``(xs, ys)`` from an .npz whose arrays are named after a model's inputs and outputs:
    xs in ``inputs`` order, ys in ``outputs`` order (an output without its own array may
    take the array 'y' when it is the only output). None when the archive names not one of
    the inputs (an .npy, or an .npz of 'x' and 'y', is read by load_arrays instead). Every
    array must hold the same number of samples."""
    path = existing_file(path)
    if not file_head(path, DataError).startswith(b"PK"):
        return None
    with NpzReader(path, DataError) as z:
        present = [n for n in inputs if n in z]
        if not present:
            return None
        shown = ", ".join(z.names[:20]) + (" ..." if len(z.names) > 20 else "")
        missing = [n for n in inputs if n not in z]
        if missing:
            raise DataError(f"{path} has arrays for the input(s) {', '.join(present)} but not for "
                            f"{', '.join(missing)} (it has: {shown}); name one array after each input")
        targets = [n for n in outputs if n in z]
        if len(targets) < len(outputs):
            if len(outputs) == 1 and "y" in z:
                targets = ["y"]
            else:
                lacking = [n for n in outputs if n not in z]
                raise DataError(f"{path} has arrays for the inputs but not for the output(s) {', '.join(lacking)} "
                                f"(it has: {shown}); name the targets after the outputs "
                                f"({', '.join(outputs)})" + (" or 'y'" if len(outputs) == 1 else ""))
        arrays = {n: z.read(n) for n in dict.fromkeys(inputs + targets)}
    counts = {n: (len(a) if a.ndim else None) for n, a in arrays.items()}
    if len(set(counts.values())) > 1 or None in counts.values():
        listed = ", ".join(f"'{n}' {c if c is not None else 'none (a single number)'}" for n, c in counts.items())
        raise DataError(f"{path}: the arrays must hold the same number of samples; they hold {listed}")
    ys = [arrays[n] for n in targets]
    return [arrays[n] for n in inputs], (ys[0] if len(ys) == 1 else ys)


def load_csv(path, label_column: int | None = -1, skip_header="auto", delimiter: str = ",",
             dtype=np.float32, columns=None, target=None, window: int | None = None, horizon: int = 1,
             stride: int = 1, sampling_rate: int = 1):
    """Numeric CSV -> ``(x (N, F), y (N,))``; y is column ``label_column`` (None:
    no labels, y = None), int64 when all labels are whole numbers. skip_header:
    True, False, or "auto" (skip the first row when a field is not a number).
    Blank lines are ignored; a bad field raises DataError naming path:line.

    With ``window=T`` the file is a time series instead (one row per time step):
    ``(x (n, T, F), y (n, K))``, the windows of the input ``columns`` and the ``target``
    columns ``horizon`` rows after each window, ``stride`` rows apart, their steps
    ``sampling_rate`` rows apart (series.load_csv_windows, Keras's
    timeseries_dataset_from_array)."""
    series_opts = {"columns": columns, "target": target, "window": window, "horizon": horizon,
                   "stride": stride, "sampling_rate": sampling_rate, "label_column": label_column}
    if any(given(k, series_opts[k]) for k in SERIES_OPTIONS):
        check_series_options(series_opts)
        return load_csv_windows(path, columns, target, window, horizon, stride, sampling_rate, skip_header,
                                delimiter, dtype)
    if label_column is not None and (isinstance(label_column, bool) or not isinstance(label_column, int)):
        raise DataError(f"label_column must be a column number (or None), got {str(label_column)[:40]!r}")
    check_csv_format(skip_header, delimiter)
    path = existing_file(path)
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
                        skip_header == "auto" and not all(is_number(c) for c in fields))):
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
