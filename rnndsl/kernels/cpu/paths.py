"""The plain route through the CPU kernels: every fast path off.

A fast path (a fused gate tile, a projected embedding table, an embedding's rows read in
place, a split by units or rows, weight gradients inside the time loop, the packed or TN
product tiles) must give what the plain route gives on the same model. ``plain_paths()``
turns them all off for a block of code, so that the differential tests can run a model
once each way and compare every number (tests/runtime/test_differential.py). The plain
route is the reference, not a mode for users: it is slower and nothing else reads it.
"""

from __future__ import annotations

from contextlib import contextmanager

_plain = False


def plain() -> bool:
    """True inside plain_paths(): take the general route at every fork."""
    return _plain


@contextmanager
def plain_paths(on: bool = True):
    """Within the block, dispatchers take the general route (one thread, x @ W for all
    steps by one product, per-element gate math, weight gradients as products over all
    steps, products by BLAS)."""
    global _plain
    before, _plain = _plain, bool(on)
    try:
        yield
    finally:
        _plain = before
