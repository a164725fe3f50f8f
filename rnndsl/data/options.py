"""Checks of the options data loaders take, from Python or from a spec's `data = ...`:
a wrong type or range is a DataError naming the option, never a TypeError from deep inside."""

from __future__ import annotations

import math
import numbers

from rnndsl.errors import DataError

from .npyfile import memory_limit

__all__ = ["whole", "number", "seed", "fits_memory"]


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


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
