"""Built-in data sets by name: ``get_dataset(name, **options)``."""

from __future__ import annotations

import inspect

from rnndsl.errors import DataError, did_you_mean

from . import digits, tasks
from .options import COMMON_OPTIONS, FILE_SOURCES, SOURCE_OPTIONS, SOURCE_REQUIRED, SOURCES

__all__ = ["get_dataset", "list_datasets", "SOURCE_OPTIONS", "SOURCE_REQUIRED", "FILE_SOURCES", "COMMON_OPTIONS",
           "SOURCES"]

_DATASETS = {
    "digits": digits.load_digits,
    "addition": tasks.addition,
    "copy": tasks.copy_task,
    "reverse": tasks.reverse_task,
    "sine": tasks.sine,
}


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
