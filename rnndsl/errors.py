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


@dataclass
class Diagnostic:
    """One spec problem at one place, with a hint on how to fix it."""

    pos: Pos
    message: str
    hint: str | None = None
    source_line: str | None = None

    def render(self) -> str:
        out = [f"{self.pos}: error: {self.message}"]
        if self.source_line is not None and self.pos.line > 0:
            text = self.source_line.rstrip("\n").expandtabs(1)
            width = 1
            if self.pos.end_column and self.pos.end_column > self.pos.column:
                width = self.pos.end_column - self.pos.column
            out.append(f"    {text}")
            out.append("    " + " " * max(self.pos.column - 1, 0) + "^" * width)
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)


class SpecError(RnnError):
    """One or more problems in a spec, each with file:line:column."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.pos.line, d.pos.column))
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.diagnostics)
        body = "\n".join(d.render() for d in self.diagnostics)
        return body if n == 1 else f"{body}\n{n} errors"


@dataclass
class DiagnosticSink:
    """Collects diagnostics so independent errors are reported in one run."""

    source: str = ""
    file: str = "<spec>"
    items: list[Diagnostic] = field(default_factory=list)

    def error(self, pos: Pos, message: str, hint: str | None = None) -> None:
        lines = self.source.splitlines()
        line = lines[pos.line - 1] if 0 < pos.line <= len(lines) else None
        self.items.append(Diagnostic(pos, message, hint, line))

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)


def did_you_mean(word: str, candidates) -> str | None:
    """'did you mean X?' for the closest candidate, or None."""
    import difflib

    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None
