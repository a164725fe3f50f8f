"""One exception family for everything rnndsl reports to a user.

Spec errors carry source positions and are collected (several per run) into a
single :class:`SpecError`; everything else (data, shapes at run time,
checkpoints, training) raises a subclass of :class:`RnnError` whose message
names what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class RnnError(Exception):
    """Base class: every error rnndsl raises on purpose."""


class DataError(RnnError):
    """Input data of the wrong shape, dtype, range or content."""


class WeightsError(RnnError):
    """set_weights / pretrained vectors that do not fit the model."""


class CheckpointError(RnnError):
    """A checkpoint that is missing, truncated, foreign or mismatched."""


class TrainingError(RnnError):
    """Training could not go on (NaN/inf loss, missing configuration)."""


class NonFiniteError(TrainingError):
    """A loss, a gradient or an updated weight became NaN or inf. The weights (and the
    optimizer's state) are those of the last good step; epoch and batch say where."""

    def __init__(self, message: str, epoch: int | None = None, batch: int | None = None):
        super().__init__(message)
        self.epoch, self.batch = epoch, batch


class DeviceError(RnnError):
    """The requested device is not available."""


class CacheError(RnnError):
    """The cache folder cannot be used safely (another user owns it or can write to it)."""


@dataclass(frozen=True)
class Pos:
    """A source position: 1-based line and column, with an optional end column."""

    file: str = "<spec>"
    line: int = 0
    column: int = 0
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# Bounds on what a spec error prints, so that a hostile or broken spec (a megabyte on one
# line, a hundred thousand bad arguments) gives a message of a few kilobytes.
MAX_SHOWN = 20              # diagnostics rendered; the rest are counted ("... and N more errors")
MAX_KEPT = 1000             # diagnostics kept in SpecError.diagnostics; the rest are counted
LINE_WIDTH = 100            # characters of a source line shown around the caret
MESSAGE_WIDTH = 400         # characters of a message or hint


def whole_number(name: str, value, least: int, error=DataError) -> int:
    """value as an int when it is a whole number >= least (a bool is not); else `error`
    saying so: the check of batch_size, epochs and the like passed from Python."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise error(f"{name} must be a whole number >= {least}, got {value!r}")
    return int(value)


def clip(text: str, width: int = 40) -> str:
    """`text` cut to about `width` characters, its middle elided: for user text in messages."""
    text = str(text)
    if len(text) <= width:
        return text
    half = max(width // 2 - 2, 1)
    return f"{text[:half]}...{text[-half:]}"


class LineIndex:
    """Line numbers and line texts of a source, found by bisection (built once, in linear time)."""

    def __init__(self, source: str):
        import re
        from array import array

        self.source = source
        self.starts = array("q", [0])
        self.starts.extend(m.end() for m in re.finditer("\n", source))

    def line_of(self, offset: int) -> int:
        """The 1-based line holding the character at `offset`."""
        import bisect

        return bisect.bisect_right(self.starts, offset)

    def piece(self, lineno: int, column: int, room: int = 2 * LINE_WIDTH) -> tuple[str | None, int, bool]:
        """(the text of a line within `room` characters of a 1-based column, the characters of
        the line before it, whether the line goes on after it): what a diagnostic keeps, so
        that a thousand errors on a megabyte line do not keep a thousand copies of it."""
        if not 0 < lineno <= len(self.starts):
            return None, 0, False
        start = self.starts[lineno - 1]
        end = self.starts[lineno] - 1 if lineno < len(self.starts) else len(self.source)
        a = max(start, start + column - 1 - room)
        b = min(end, start + max(column, 1) - 1 + room)
        if b < a:
            a = b
        text = self.source[a:b]
        if b == end:
            text = text.rstrip("\r")
        return text, a - start, b < end

    def line(self, lineno: int) -> str | None:
        if not 0 < lineno <= len(self.starts):
            return None
        start = self.starts[lineno - 1]
        end = self.starts[lineno] - 1 if lineno < len(self.starts) else len(self.source)
        return self.source[start:end].rstrip("\r")


def _window(text: str, column: int, width: int, cut_left: bool = False,
            cut_right: bool = False) -> tuple[str, int, int]:
    """(the part of a long line shown, the caret's 0-based column in it, the room left for the
    caret): the line is cut to `width` characters around the column, with '...' at the cuts
    (and where `text` is itself a piece of a longer line: cut_left, cut_right)."""
    start = 0 if len(text) <= width else max(0, min(column - width // 3, len(text) - width))
    end = min(len(text), start + width)
    shown = text[start:end]
    if start > 0 or cut_left:
        shown = "..." + shown[3:] if start > 0 else "..." + shown
        start -= 0 if start > 0 else 3
    if end < len(text) or cut_right:
        shown = shown[:-3] + "..." if end < len(text) else shown + "..."
    return shown, column - start, len(shown) - (column - start)


@dataclass
class Diagnostic:
    """One spec problem at one place, with a hint on how to fix it.

    `source_line` is the line (or, for a long line, the piece of it around the column:
    `line_offset` characters of the line come before it, and `line_more` says the line
    goes on after it)."""

    pos: Pos
    message: str
    hint: str | None = None
    source_line: str | None = None
    line_offset: int = 0
    line_more: bool = False

    def render(self) -> str:
        out = [f"{self.pos}: error: {clip(self.message, MESSAGE_WIDTH)}"]
        if self.source_line is not None and self.pos.line > 0:
            text = self.source_line.rstrip("\n")
            column = max(self.pos.column - 1 - self.line_offset, 0)
            shown, caret, room = _window(text, column, LINE_WIDTH, self.line_offset > 0, self.line_more)
            # tabs become one space so the caret lines up; other control characters are shown
            # as '?' so that they cannot move the terminal's cursor
            shown = "".join(" " if c == "\t" else "?" if (ord(c) < 32 or 0x7F <= ord(c) < 0xA0
                                                           or 0xD800 <= ord(c) < 0xE000) else c for c in shown)
            width = 1
            if self.pos.end_column and self.pos.end_column > self.pos.column:
                width = self.pos.end_column - self.pos.column
            width = max(1, min(width, room))
            out.append(f"    {shown}")
            out.append("    " + " " * caret + "^" * width)
        if self.hint:
            out.append(f"  hint: {clip(self.hint, MESSAGE_WIDTH)}")
        return "\n".join(out)


class SpecError(RnnError):
    """One or more problems in a spec, each with file:line:column.

    `diagnostics` holds the first MAX_KEPT problems found (sorted by position); `count`
    is how many there were in all. The message shows the first MAX_SHOWN."""

    def __init__(self, diagnostics: list[Diagnostic], count: int | None = None):
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.pos.line, d.pos.column))
        self.count = max(count or 0, len(self.diagnostics))
        super().__init__(self.render())

    def render(self) -> str:
        n = self.count
        body = "\n".join(d.render() for d in self.diagnostics[:MAX_SHOWN])
        more = n - min(len(self.diagnostics), MAX_SHOWN)
        if more:
            body += f"\n... and {more:,} more error{'s' if more != 1 else ''}"
        return body if n == 1 else f"{body}\n{n:,} errors"


@dataclass
class DiagnosticSink:
    """Collects diagnostics so independent errors are reported in one run (the first MAX_KEPT
    of them; `count` counts them all)."""

    source: str = ""
    file: str = "<spec>"
    items: list[Diagnostic] = field(default_factory=list)
    count: int = 0

    @property
    def lines(self) -> LineIndex:
        index = self.__dict__.get("_lines")
        if index is None or index.source is not self.source:
            index = self.__dict__["_lines"] = LineIndex(self.source)
        return index

    def error(self, pos: Pos, message: str, hint: str | None = None) -> None:
        self.count += 1
        if len(self.items) >= MAX_KEPT:
            return
        line, offset, more = self.lines.piece(pos.line, pos.column)
        self.items.append(Diagnostic(pos, clip(message, MESSAGE_WIDTH),
                                     None if hint is None else clip(hint, MESSAGE_WIDTH), line, offset, more))

    def raise_if_any(self) -> None:
        if self.count:
            raise SpecError(self.items, self.count)


def did_you_mean(word: str, candidates) -> str | None:
    """'did you mean X?' for the closest candidate, or None.

    Bounded work, however many names a spec defines: the first 2,000 candidates are looked
    at, those whose length could match at all (difflib's real_quick_ratio) are kept, and at
    most 100 of them (those with the word's first letter first) are compared."""
    import difflib
    from itertools import islice

    word = str(word)
    if not word or len(word) > 200:
        return None
    n = len(word)
    pool = [c for c in islice(map(str, candidates), 2000) if 2 * min(n, len(c)) >= 0.6 * (n + len(c))]
    if len(pool) > 100:
        pool = ([c for c in pool if c[:1] == word[:1]] + [c for c in pool if c[:1] != word[:1]])[:100]
    match = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return f"did you mean '{clip(match[0])}'?" if match else None
