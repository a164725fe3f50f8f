"""Cells used by the tests (cell_texts.py), and the finite-difference harness (tests/gradcheck.py)."""

from gradcheck import check, rel_err  # noqa: F401 - check(text, x, y, loss=..., from_logits=..., seed=...)

from .cell_texts import GRU_AFTER, GRU_BEFORE, INDRNN, LNC, LSTM, MGU, ODD, PEEPHOLE, TWO  # noqa: F401
