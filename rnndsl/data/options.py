"""Checks of the options data loaders take, from Python or from a spec's `data = ...`:
a wrong type or range is a DataError naming the option, never a TypeError from deep inside."""

from __future__ import annotations

import math
import numbers

from pathlib import Path

from ..errors import DataError, clip, did_you_mean

from .npyfile import memory_limit

__all__ = ["whole", "number", "seed", "fits_memory", "check_options", "SOURCE_OPTIONS", "SOURCE_REQUIRED",
           "FILE_SOURCES", "COMMON_OPTIONS", "SOURCES", "CSV_TEXT", "CSV_NUMBERS", "csv_conflict", "column_index"]

# The data-source registry: what each source takes, from Python (the loaders check their
# arguments with check_options) or from a spec's `data = name(...)` (checked by `check`
# before any data is read, from the same table): option -> kind. Kinds: "count" (a whole
# number >= 1), "seed" (a whole number >= 0), "int" (a whole number), "number>=0",
# "number>0", "fraction" (in [0, 1)), "bool", "string", "char" (a one-character string),
# "strings" (a list of strings), "header" (true, false or "auto"), "columns" (a column's
# name or number from 0, or a non-empty list of them), "column" (one CSV column: its header
# name or its number from 0), ("choice", names), ("range", low, high) (a whole number in
# [low, high]). Each is a parameter of the loader the source calls (tests/data hold the table
# against the signatures).
FILE_SOURCES = ("npz", "npy", "csv", "text", "folder")   # their first argument is the file's (folder's) path
_TEXT = {"max_words": "count", "maxlen": "count", "padding": ("choice", ("pre", "post")),
         "truncating": ("choice", ("pre", "post")), "labels": "strings"}
SOURCE_OPTIONS: dict[str, dict[str, object]] = {
    "digits": {},
    # a + b stays within int64 up to 18 digits
    "addition": {"n": "count", "digits": ("range", 1, 18), "reverse": "bool", "seed": "seed"},
    # ids and the start token (vocab + 1) stay int32
    "copy": {"n": "count", "length": "count", "vocab": ("range", 1, 2**31 - 3), "seed": "seed",
             "min_length": "count"},
    "reverse": {"n": "count", "length": "count", "vocab": ("range", 1, 2**31 - 3), "seed": "seed",
                "min_length": "count"},
    "sine": {"n": "count", "length": "count", "noise": "number>=0", "seed": "seed", "period": "number>0"},
    # one long series cut into chunks for stateful layers (its seed is the run's seed)
    "series": {"length": "count", "noise": "number>=0", "period": "number>0", "batch_size": "count",
               "chunk": "count"},
    "npz": {"x_key": "string", "y_key": "string"},
    "npy": {},
    "csv": {"label_column": "int", "skip_header": "header", "delimiter": "char",
            # a time series (rnndsl/data/series.py): window= makes csv() cut windows by time
            "columns": "columns", "target": "columns", "window": "count", "horizon": "count", "stride": "count",
            "sampling_rate": "count",
            # a column of texts and one of labels: read by textfiles.load_text_csv
            "text": "column", "label": "column", **_TEXT},
    "text": dict(_TEXT),
    "folder": dict(_TEXT),
}
# csv(text=...) reads texts (the CSV_TEXT options), csv(...) without it numbers (label_column)
CSV_TEXT = ("text", "label", *_TEXT)
CSV_NUMBERS = ("label_column",)
SOURCES = tuple(SOURCE_OPTIONS)                     # the names, in the order hints list them
SOURCE_REQUIRED = {"addition": ("n",), "copy": ("n", "length"), "reverse": ("n", "length"),
                   "sine": ("n", "length"), "series": ("length",)}
# every source also takes these (rnndsl.train.sources cuts the held-out split with them)
COMMON_OPTIONS = {"test_split": "fraction", "split_seed": "seed"}


def csv_conflict(given) -> tuple[str, str, str | None] | None:
    """(option, message, hint) for csv options that do not go together (a text option
    without text=, label_column with text=, text= without label=), else None."""
    given = list(given)
    if "text" in given:
        numbers = [name for name in given if name in CSV_NUMBERS]
        if numbers:
            return numbers[0], "with text=, the labels' column is given as label=", 'e.g. label="sentiment"'
        if "label" not in given:
            return "text", "csv(text=...) needs label=, the column of the labels", 'e.g. label="sentiment"'
        return None
    for name in given:
        if name in CSV_TEXT:
            return name, f"csv option {name} goes with text=, the column of texts to read", \
                'e.g. csv("reviews.csv", text="review", label="sentiment")'
    return None


def whole(name: str, value, least: int = 1, most: int | None = None) -> int:
    """``value`` as an int: a whole number (not a bool) in [least, most]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DataError(f"{name} must be a whole number >= {least}, got {_show(value)}")
    value = int(value)
    if value < least or (most is not None and value > most):
        span = f">= {least}" if most is None else f"between {least} and {most}"
        raise DataError(f"{name} must be {span}, got {value}")
    return value


def number(name: str, value, least: float = 0.0, above: bool = False) -> float:
    """``value`` as a finite float >= least (> least when ``above``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise DataError(f"{name} must be a finite number, got {_show(value)}")
    value = float(value)
    if value < least or (above and value == least):
        raise DataError(f"{name} must be {'>' if above else '>='} {least}, got {value}")
    return value


def seed(value, name: str = "seed"):
    """A seed numpy's default_rng takes: a whole number >= 0 (or None, or a Generator)."""
    if value is None or hasattr(value, "bit_generator"):
        return value
    return whole(name, value, 0)


def fits_memory(what: str, count: int, itemsize: int) -> None:
    """Refuse an array of ``count`` items before it is made when it could not fit in memory."""
    nbytes = int(count) * int(itemsize)
    limit = memory_limit()
    if nbytes > limit:
        raise DataError(f"{what} would take {nbytes:,} bytes, more than the memory bound of {limit:,} bytes")


def check_options(source: str, **values) -> None:
    """Check the numeric options of a data source (as SOURCE_OPTIONS gives their kinds),
    in the order given; a value of the wrong type or range is a DataError naming it."""
    table = {**SOURCE_OPTIONS[source], **COMMON_OPTIONS}
    for name, value in values.items():
        kind = table[name]
        if kind == "count":
            whole(name, value, 1)
        elif kind == "seed":
            seed(value, name)
        elif isinstance(kind, tuple) and kind[0] == "range":
            whole(name, value, kind[1], kind[2])
        elif kind == "number>=0":
            number(name, value, 0.0)
        elif kind == "number>0":
            number(name, value, 0.0, above=True)
        elif kind == "fraction":
            if number(name, value, 0.0) >= 1:
                raise DataError(f"{name} must be below 1 (a fraction held out), got {value}")
        else:
            raise AssertionError(f"{source}.{name}: {kind} is not a numeric kind")  # pragma: no cover


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_number(s: str) -> bool:
    """Whether a CSV field reads as a number (a header's fields mostly do not)."""
    try:
        float(s)
    except ValueError:
        return False
    return True


def existing_file(path) -> Path:
    """path as a Path, a DataError when no file is there."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"data path {path} is not a file")
    return path


def check_csv_format(skip_header, delimiter) -> None:
    """A CSV reader's skip_header (true, false or "auto") and delimiter (one character)."""
    if skip_header not in (True, False, "auto"):
        raise DataError(f"skip_header must be true, false or \"auto\", got {str(skip_header)[:40]!r}")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise DataError(f"delimiter must be one character (not a quote or line break), got "
                        f"{str(delimiter)[:40]!r}")


def column_index(path, what: str, column, header: list[str] | None, ncols: int, line: int) -> int:
    """The number of a CSV column named by its header (a string) or numbered from 0, for the
    option `what`; a DataError naming the file, the line and the columns there are otherwise."""
    if not isinstance(column, str):
        if not 0 <= column < ncols:
            raise DataError(f"{path}:{line}: {what} names column {column}, but the rows have {ncols} column(s) "
                            f"(numbered from 0: 0..{ncols - 1})")
        return int(column)
    if header is None:
        raise DataError(f"{path} has no header row, so {what} cannot name column {clip(column)!r}; add a header "
                        "line of column names, or number the column from 0")
    found = [j for j, h in enumerate(header) if h == column]
    if not found:
        hint = did_you_mean(column, header)
        raise DataError(f"{path}:{line}: no column {clip(column)!r} (the columns are: "
                        f"{', '.join(clip(h, 20) for h in header[:20])}{' ...' if len(header) > 20 else ''})"
                        + (f"; {hint}" if hint else ""))
    if len(found) > 1:
        raise DataError(f"{path}:{line}: the header names column {clip(column)!r} {len(found)} times "
                        f"(columns {', '.join(map(str, found))}); rename one, or number the one to read from 0")
    return found[0]
