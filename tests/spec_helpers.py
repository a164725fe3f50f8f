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


def check_case(case) -> None:
    """case = (spec, line, culprit substring or None, message part, hint part or None[, nth]):
    a diagnostic with that message sits at that line, its column where the culprit starts
    (caret underneath), and its hint says that."""
    text, line, culprit, message, hint = case[:5]
    nth = case[5] if len(case) > 5 else 0
    diags = errors_of(text)
    matching = [d for d in diags if message in d.message]
    assert matching, f"no diagnostic with {message!r}; got {[d.message for d in diags]}"
    d = matching[0]
    assert d.pos.file == "bad.rnn"
    assert d.pos.line == line, (d.pos, d.message)
    if culprit is not None:
        assert d.pos.column == col_of(text, line, culprit, nth), (d.pos, d.message)
    if hint is not None:
        assert d.hint and hint in d.hint, d.hint
    rendered = d.render()
    assert rendered.startswith(f"bad.rnn:{line}:{d.pos.column}: error: ")
    caret_line = rendered.splitlines()[2]
    assert caret_line.index("^") - 4 == d.pos.column - 1  # the caret sits under the culprit
