"""Built-in data sets by name: ``get_dataset(name, **options)``."""

from __future__ import annotations

import inspect

from rnndsl.errors import DataError, did_you_mean

from . import digits, tasks

__all__ = ["get_dataset", "list_datasets", "SOURCE_OPTIONS", "SOURCE_REQUIRED", "FILE_SOURCES", "COMMON_OPTIONS"]

_DATASETS = {
    "digits": digits.load_digits,
    "addition": tasks.addition,
    "copy": tasks.copy_task,
    "reverse": tasks.reverse_task,
    "sine": tasks.sine,
}


# What a spec's train section may pass to each data source (`data = addition(n=1000)`),
# checked by `check` before any data is read: option -> kind. Kinds: "count" (a whole
# number >= 1), "seed" (a whole number >= 0), "int" (a whole number), "number>=0",
# "number>0", "fraction" (in [0, 1)), "bool", "string", "char" (a one-character string),
# "strings" (a list of strings), "header" (true, false or "auto"), ("choice", names),
# ("range", low, high) (a whole number in [low, high]). Each is a parameter of the
# loader the source calls (tests/data hold the table against the signatures).
FILE_SOURCES = ("npz", "npy", "csv", "text")        # their first argument is the file's path
SOURCE_OPTIONS: dict[str, dict[str, object]] = {
    "digits": {},
    "addition": {"n": "count", "digits": ("range", 1, 9), "reverse": "bool", "seed": "seed"},
    "copy": {"n": "count", "length": "count", "vocab": "count", "seed": "seed", "min_length": "count"},
    "reverse": {"n": "count", "length": "count", "vocab": "count", "seed": "seed", "min_length": "count"},
    "sine": {"n": "count", "length": "count", "noise": "number>=0", "seed": "seed", "period": "number>0"},
    # one long series cut into chunks for stateful layers (its seed is the run's seed)
    "series": {"length": "count", "noise": "number>=0", "period": "number>0", "batch_size": "count",
               "chunk": "count"},
    "npz": {"x_key": "string", "y_key": "string"},
    "npy": {},
    "csv": {"label_column": "int", "skip_header": "header", "delimiter": "char"},
    "text": {"max_words": "count", "maxlen": "count", "padding": ("choice", ("pre", "post")),
             "truncating": ("choice", ("pre", "post")), "labels": "strings"},
}
SOURCE_REQUIRED = {"addition": ("n",), "copy": ("n", "length"), "reverse": ("n", "length"),
                   "sine": ("n", "length"), "series": ("length",)}
# every source also takes these (rnndsl.train.sources cuts the held-out split with them)
COMMON_OPTIONS = {"test_split": "fraction", "split_seed": "seed"}


def list_datasets() -> list[str]:
    """Names get_dataset knows."""
    return sorted(_DATASETS)


def get_dataset(name: str, **options):
    """What the named loader returns: "digits" -> load_digits(), "addition" ->
    addition(**options), "copy" -> copy_task, "reverse" -> reverse_task,
    "sine" -> sine. Unknown names and options raise DataError."""
    key = str(name).strip().lower()
    fn = _DATASETS.get(key)
    if fn is None:
        hint = did_you_mean(key, _DATASETS)
        raise DataError(f"unknown dataset '{name}'" + (f"; {hint}" if hint else "")
                        + f" (known: {', '.join(list_datasets())})")
    params = inspect.signature(fn).parameters
    for opt in options:
        if opt not in params:
            hint = did_you_mean(opt, params)
            raise DataError(f"dataset '{key}' has no option '{opt}'" + (f"; {hint}" if hint else "")
                            + f" (options: {', '.join(params) or 'none'})")
    missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in options]
    if missing:
        raise DataError(f"dataset '{key}' needs option(s): {', '.join(missing)}")
    return fn(**options)
