"""Cells used by the tests (cell_texts.py), and the finite-difference harness of tests/engine."""

import importlib.util
from pathlib import Path

from .cell_texts import GRU_AFTER, GRU_BEFORE, INDRNN, LSTM, MGU, ODD, PEEPHOLE, TWO  # noqa: F401


def _load_engine_harness():
    path = Path(__file__).resolve().parents[1] / "engine" / "test_engine_gradients.py"
    spec = importlib.util.spec_from_file_location("_engine_gradients_harness", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_harness = _load_engine_harness()
check = _harness.check          # check(text, x, y, loss=..., from_logits=..., seed=...): central differences
rel_err = _harness.rel_err
