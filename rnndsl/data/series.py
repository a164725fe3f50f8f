"""Time series: a numeric CSV's columns by time, and sliding windows over them.

Windows follow Keras's ``timeseries_dataset_from_array``: with window length T, stride s
and sampling rate r, window i starts at row p = i*s and reads rows p, p+r, ..., p+(T-1)r.
Its target is the target row ``horizon`` h rows after the window's last row:

    x[i] = data[p + k r]  (k = 0..T-1)        y[i] = target[p + (T-1) r + h]

which is Keras's ``timeseries_dataset_from_array(data, target[(T-1)r + h:], T, s, r)``;
there are floor((N - (T-1)r - h - 1) / s) + 1 windows over N rows. Windows stay in time
order; ``chronological_split`` cuts them into train, validation and test parts by time.
"""

from __future__ import annotations

import csv
import io
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .options import check_csv_format, column_index, existing_file, fits_memory, is_number, whole
from .npyfile import memory_limit

__all__ = ["windows", "window_starts", "rows_needed", "SeriesTable", "read_series", "load_csv_windows",
           "chronological_split", "check_series_options", "series_option_problems", "given", "SERIES_OPTIONS"]

# csv(...)'s options that make it a time series, and the defaults of those that have one
SERIES_OPTIONS = {"columns": None, "target": None, "window": None, "horizon": 1, "stride": 1,
                  "sampling_rate": 1}


def rows_needed(window: int, horizon: int = 1, sampling_rate: int = 1) -> int:
    """Rows one window and its target span: (T-1) r + h + 1."""
    return (window - 1) * sampling_rate + horizon + 1


def window_starts(n_rows: int, window: int, horizon: int = 1, stride: int = 1, sampling_rate: int = 1,
                  what: str = "the series") -> np.ndarray:
    """The first row of each window over n_rows rows (a DataError when not one fits)."""
    need = rows_needed(window, horizon, sampling_rate)
    if n_rows < need:
        raise DataError(f"{what} has {n_rows} row(s), too few for one window of {window} steps"
                        + (f" {sampling_rate} rows apart" if sampling_rate > 1 else "")
                        + f" and its target {horizon} row(s) after it: that takes {need} rows")
    return np.arange(0, n_rows - need + 1, stride, dtype=np.int64)


def _check_window_options(window, horizon, stride, sampling_rate) -> None:
    whole("window", window, 1)
    whole("horizon", horizon, 1)
    whole("stride", stride, 1)
    whole("sampling_rate", sampling_rate, 1)


def windows(data, window: int, horizon: int = 1, stride: int = 1, sampling_rate: int = 1, target=None,
            dtype=np.float32):
    """Sliding windows over a series, as Keras's timeseries_dataset_from_array makes them
    (see the module's docstring): ``(x (n, window, F), y)``.

    data: (N,) or (N, F) numbers, axis 0 the time (a 1-D series gives F = 1). target:
    None (every column of data, y (n, F)), a column number or a list of them (y (n, K)),
    or an array of N rows aligned with data (y keeps its rows' shape). y[i] is the target
    ``horizon`` rows after window i's last row."""
    _check_window_options(window, horizon, stride, sampling_rate)
    a = np.asarray(data)
    if a.dtype.kind not in "biuf":
        raise DataError(f"windows: data must hold numbers, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataError(f"windows: data must be (steps,) or (steps, features), got shape {a.shape}")
    labels = False                      # a target array of its own keeps whole numbers (labels)
    if target is None:
        t = a
    elif isinstance(target, (numbers.Integral, list, tuple)) and not isinstance(target, bool):
        cols = [target] if isinstance(target, numbers.Integral) else list(target)
        if not cols or any(isinstance(c, bool) or not isinstance(c, numbers.Integral) or not
                           -a.shape[1] <= c < a.shape[1] for c in cols):
            raise DataError(f"windows: target must name columns 0..{a.shape[1] - 1} of data, got {target!r}")
        t = a[:, [int(c) % a.shape[1] for c in cols]]
    else:
        t = np.asarray(target)
        if t.dtype.kind not in "biuf" or t.ndim == 0 or len(t) != len(a):
            raise DataError(f"windows: target must be column numbers of data or an array of its {len(a)} "
                            f"rows of numbers, got shape {t.shape} dtype {t.dtype}")
        labels = t.dtype.kind in "biu"
    starts = window_starts(len(a), window, horizon, stride, sampling_rate)
    fits_memory(f"{len(starts)} windows of {window} steps x {a.shape[1]} features",
                len(starts) * window * a.shape[1], np.dtype(dtype).itemsize)
    x = a[starts[:, None] + sampling_rate * np.arange(window)[None, :]].astype(dtype)
    y = t[starts + (window - 1) * sampling_rate + horizon]
    return x, (y if labels else y.astype(dtype))


# --- the options --------------------------------------------------------------------------------------


def _is_column(c) -> bool:
    return (isinstance(c, str) and c != "") or (isinstance(c, numbers.Integral) and not isinstance(c, bool)
                                                and c >= 0)


def given(name: str, value) -> bool:
    """Whether a time-series option of csv(...) is set (not left at its default)."""
    default = SERIES_OPTIONS[name]
    if value is None or value is default:
        return False
    return not (isinstance(value, numbers.Number) and not isinstance(value, bool) and value == default)


def series_option_problems(opts: dict) -> list[tuple[str, str, str | None]]:
    """What is wrong with csv(...)'s time-series options taken together: (option, message,
    hint) for each problem; `check` reports them at the option, the loader raises the first.
    The options' own types and ranges are checked before (rnndsl.data.options)."""
    out = []
    windowed = opts.get("window") is not None
    if not windowed:
        for name in SERIES_OPTIONS:
            if name != "window" and given(name, opts.get(name)):
                out.append((name, f"{name}= goes with window=, which makes csv() a time series",
                            "e.g. csv(\"series.csv\", columns=[\"temp\"], window=24)"))
        return out
    if opts.get("label_column", -1) != -1:
        out.append(("label_column", "label_column is for a table of samples; a time series (window=) "
                                    "names its target columns with target=", 'e.g. target=["temp"]'))
    for name in ("columns", "target"):
        value = opts.get(name)
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items or not all(_is_column(c) for c in items):
            out.append((name, f"{name} takes column names (or numbers from 0) or a list of them, "
                              f"got {str(value)[:60]!r}", None))
            continue
        seen = set()
        for c in items:
            if c in seen:
                out.append((name, f"column {c!r} is named twice in {name}", None))
                break
            seen.add(c)
    return out


def check_series_options(opts: dict) -> None:
    """series_option_problems as a DataError (the first problem) for a call from Python."""
    for name, value in (("window", opts.get("window")), ("horizon", opts.get("horizon", 1)),
                        ("stride", opts.get("stride", 1)), ("sampling_rate", opts.get("sampling_rate", 1))):
        if value is not None:
            whole(name, value, 1)
    problems = series_option_problems(opts)
    if problems:
        _, message, hint = problems[0]
        raise DataError(message + (f" ({hint})" if hint else ""))


def _as_list(value) -> list | None:
    return None if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


# --- reading a CSV ------------------------------------------------------------------------------------


@dataclass
class SeriesTable:
    """A CSV's chosen columns by time: x (N, F) the input columns, y (N, K) the target
    columns, float64; their names (the header's, or "column N"); line[i] is row i's line
    in the file."""
    x: np.ndarray
    y: np.ndarray
    columns: list[str]
    targets: list[str]
    line: np.ndarray
    path: Path

    def target_positions(self) -> list[int] | None:
        """Where each target column is among the input columns (None when one is not an input)."""
        try:
            return [self.columns.index(t) for t in self.targets]
        except ValueError:
            return None


def _decode(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    if size > memory_limit():
        raise DataError(f"{path} holds {size:,} bytes, more than the memory bound of {memory_limit():,} bytes")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}, {e.reason}); "
                        "save the file as UTF-8") from None


def read_series(path, columns=None, target=None, skip_header="auto", delimiter: str = ",") -> SeriesTable:
    """The columns of a numeric CSV by time (one row per time step, oldest first).

    columns: the input columns, names from the header row (or numbers from 0), default
    all; target: the columns to predict, default the input columns. Only these columns
    must hold numbers (a date column may stay). skip_header: True, False or "auto" (the
    first row is a header when one of its fields is not a number). Blank lines are
    skipped. A missing column, a row with another number of fields, an empty, non-numeric
    or non-finite value, or bytes that are not UTF-8 are a DataError naming path:line and
    the column."""
    check_csv_format(skip_header, delimiter)
    for name, value in (("columns", columns), ("target", target)):
        items = _as_list(value)
        if items is not None and (not items or not all(_is_column(c) for c in items)):
            raise DataError(f"{name} takes column names (or numbers from 0) or a list of them, got {value!r}")
    path = existing_file(path)
    text = _decode(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = None
    ncols = None
    cols = tcols = None
    rows: list[list[float]] = []
    lines: list[int] = []
    names: list[str] = []
    try:
        for row in reader:
            lineno = reader.line_num
            fields = [c.strip() for c in row]
            if not fields or all(c == "" for c in fields):
                continue
            if ncols is None:
                ncols = len(fields)
                if skip_header is True or (skip_header == "auto" and not all(is_number(c) for c in fields)):
                    header = fields
                names = header or [f"column {j}" for j in range(ncols)]
                cols = [column_index(path, "columns", c, header, ncols, lineno)
                        for c in _as_list(columns) or range(ncols)]
                tcols = cols if target is None else [column_index(path, "target", c, header, ncols, lineno)
                                                     for c in _as_list(target)]
                used = sorted(set(cols) | set(tcols))
                if header is not None:
                    continue
            if len(fields) != ncols:
                raise DataError(f"{path}:{lineno}: expected {ncols} fields, as "
                                f"{'the header has' if header else 'the first row has'}, found {len(fields)}")
            values = [0.0] * ncols
            for j in used:
                c = fields[j]
                what = f"column {names[j]!r}" if header else f"column {j}"
                if c == "":
                    raise DataError(f"{path}:{lineno}: {what} is empty (a missing value); fill it in or "
                                    "drop the row")
                try:
                    v = float(c)
                except ValueError:
                    hint = "" if columns is not None else \
                        "; choose the numeric columns with columns=[...]"
                    raise DataError(f"{path}:{lineno}: {what}: cannot read {c[:40]!r} as a number{hint}") from None
                if v != v or v in (float("inf"), float("-inf")):
                    raise DataError(f"{path}:{lineno}: {what}: {c[:40]!r} is not a finite number")
                values[j] = v
            rows.append(values)
            lines.append(lineno)
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    if not rows:
        raise DataError(f"{path} holds no data rows")
    data = np.array(rows, dtype=np.float64)
    return SeriesTable(data[:, cols], data[:, tcols], [names[j] for j in cols], [names[j] for j in tcols],
                       np.array(lines, dtype=np.int64), path)


def load_csv_windows(path, columns=None, target=None, window: int = 1, horizon: int = 1, stride: int = 1,
                     sampling_rate: int = 1, skip_header="auto", delimiter: str = ",", dtype=np.float32):
    """csv(..., window=T): ``(x (n, T, F), y (n, K))``, the windows over the whole file in
    time order (read_series's columns, windows' windowing)."""
    check_series_options({"columns": columns, "target": target, "window": window, "horizon": horizon,
                          "stride": stride, "sampling_rate": sampling_rate})
    table = read_series(path, columns, target, skip_header, delimiter)
    starts = window_starts(len(table.x), window, horizon, stride, sampling_rate, what=str(table.path))
    x, _ = windows(table.x, window, horizon, stride, sampling_rate, dtype=dtype)
    y = table.y[starts + (window - 1) * sampling_rate + horizon].astype(dtype)
    return x, y


def chronological_split(n: int, test_split: float = 0.0, validation_split: float = 0.0,
                        what: str = "the series") -> tuple[int, int]:
    """Cut n windows in time order into train [0, a), validation [a, b) and test [b, n):
    (a, b). Every window of a later part has its target after every target of an earlier
    one; a part asked for (a fraction > 0) gets at least one window."""
    n_test = int(round(n * test_split))
    n_val = int(round(n * validation_split))
    if test_split > 0:
        n_test = max(n_test, 1)
    if validation_split > 0:
        n_val = max(n_val, 1)
    a = n - n_test - n_val
    if a < 1:
        raise DataError(f"{what} gives {n} window(s): too few to hold out "
                        + " and ".join(p for p, k in (("test_split", test_split), ("validation_split",
                                                                                    validation_split)) if k)
                        + " and keep windows to train on; use a longer series or smaller fractions")
    return a, n - n_test
