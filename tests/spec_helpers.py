"""Shared by the spec-error tests: compile a bad spec, locate the culprit's column."""

import pytest

import rnndsl
from rnndsl.errors import SpecError


def errors_of(text: str) -> list:
    """The diagnostics of a spec that must not compile (file name bad.rnn)."""
    with pytest.raises(SpecError) as info:
        rnndsl.compile(text, file="bad.rnn")
    return info.value.diagnostics


def col_of(text: str, line: int, culprit: str, nth: int = 0) -> int:
    """1-based column where the nth occurrence of culprit starts on the given line."""
    src = text.splitlines()[line - 1]
    idx = -1
    for _ in range(nth + 1):
        idx = src.index(culprit, idx + 1)
    return idx + 1
