"""A Keras-style progress bar.

    12/50 [=======>......................] - ETA: 3s - loss: 0.1234 - accuracy: 0.9500
    50/50 [==============================] - 2s 40ms/step - loss: 0.1234 - accuracy: 0.9500

On a terminal (``stream.isatty()``) the line is rewritten in place with ``\\r``;
otherwise only the final line is written (one line per epoch, log friendly).
verbose=0 writes nothing; verbose=2 writes only a final line without the bar.
Values are shown as running means weighted by the steps they cover, except
names listed in ``stateful_metrics``, shown as given (``stateful_metrics=True``: every
value is already a running figure, as fit's are, and is shown as given).
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progbar", "format_duration"]


def format_duration(seconds: float) -> str:
    """ETA text as Keras writes it: 1:02:03, 2:03 or 7s."""
    s = int(seconds)
    if seconds > 3600:
        return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"
    if seconds > 60:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s}s"


def _per_step(seconds: float, unit: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def _format_value(v) -> str:
    if isinstance(v, str):
        return v
    v = float(v)
    return f"{v:.4f}" if abs(v) > 1e-3 or v == 0 else f"{v:.4e}"


class Progbar:
    """Progress over ``target`` steps (None when unknown): ``update(step, values)``
    after each step, where ``step`` counts completed steps (1..target)."""

    def __init__(self, target: int | None, verbose: int = 1, stream=None, width: int = 30,
                 interval: float = 0.05, stateful_metrics=(), unit_name: str = "step",
                 clock=time.monotonic):
        if target is not None and target < 0:
            raise ValueError(f"target must be >= 0 or None, got {target}")
        self.target = target
        self.verbose = int(verbose)
        self.stream = stream if stream is not None else sys.stdout
        self.width = int(width)
        self.interval = float(interval)
        self._all_stateful = stateful_metrics is True
        self.stateful_metrics = set() if self._all_stateful else set(stateful_metrics or ())
        self.unit_name = unit_name
        self._clock = clock
        isatty = getattr(self.stream, "isatty", None)
        try:
            self._dynamic = bool(isatty()) if isatty else False
        except (ValueError, OSError):  # closed or odd streams
            self._dynamic = False
        self._sums: dict[str, list[float]] = {}  # name -> [weighted sum, steps] or [value]
        self._order: list[str] = []
        self._seen = 0
        self._start = self._clock()
        self._first_step_end: float | None = None  # excludes JIT warm-up from ETA
        self._last_draw = 0.0
        self._prev_width = 0
        self._finished = False

    # ------------------------------------------------------------------
    def update(self, step: int, values: dict | None = None, finalize: bool | None = None) -> None:
        """Record ``values`` for the steps up to ``step`` and redraw if due."""
        if finalize is None:
            finalize = self.target is not None and step >= self.target
        span = max(step - self._seen, 1)
        for k, v in (values or {}).items():
            if k not in self._sums:
                self._order.append(k)
            if self._all_stateful or k in self.stateful_metrics or isinstance(v, str):
                self._sums[k] = [v]
            else:
                acc = self._sums.get(k)
                if acc is None or len(acc) != 2:
                    acc = self._sums[k] = [0.0, 0]
                acc[0] += float(v) * span
                acc[1] += span
        now = self._clock()
        if self._first_step_end is None and step >= 1:
            self._first_step_end = now
            self._first_step = step
        self._seen = step
        if self.verbose == 0 or self._finished:
            return
        if finalize:
            self._finished = True
        if self.verbose == 1 and self._dynamic:
            if not finalize and now - self._last_draw < self.interval:
                return
            line = self._bar(step) + self._info(step, now, finalize)
            pad = " " * max(self._prev_width - len(line), 0)
            self._prev_width = len(line)
            self.stream.write("\r" + line + pad + ("\n" if finalize else ""))
            self.stream.flush()
            self._last_draw = now
        elif finalize:
            if self.verbose == 1:
                line = self._bar(step) + self._info(step, now, True)
            else:
                line = self._count(step) + self._info(step, now, True)
            self.stream.write(line + "\n")
            self.stream.flush()

    def add(self, n: int, values: dict | None = None) -> None:
        """Advance by ``n`` steps."""
        self.update(self._seen + n, values)

    def means(self) -> dict:
        """Current displayed value per name (running means, stateful as given)."""
        out = {}
        for k in self._order:
            acc = self._sums[k]
            out[k] = acc[0] if len(acc) == 1 else acc[0] / max(acc[1], 1)
        return out

    # ------------------------------------------------------------------
    def _count(self, step: int) -> str:
        if self.target is None:
            return f"{step:7d}/Unknown"
        digits = len(str(self.target))
        return f"{step:{digits}d}/{self.target}"

    def _bar(self, step: int) -> str:
        if self.target is None:
            return self._count(step)
        frac = min(step / self.target, 1.0) if self.target else 1.0
        done = int(self.width * frac)
        if done > 0:
            body = "=" * (done - 1) + (">" if step < self.target else "=")
        else:
            body = ""
        return f"{self._count(step)} [{body}{'.' * (self.width - done)}]"

    def _step_time(self, step: int, now: float) -> float:
        # The first step pays for numba compilation; estimate from the others.
        if self._first_step_end is not None and step > self._first_step:
            return (now - self._first_step_end) / (step - self._first_step)
        return (now - self._start) / step if step else 0.0

    def _info(self, step: int, now: float, final: bool) -> str:
        per = self._step_time(step, now)
        if final or self.target is None:
            info = f" - {now - self._start:.0f}s {_per_step(per, self.unit_name)}"
        else:
            info = f" - ETA: {format_duration(per * (self.target - step))}"
        for k, v in self.means().items():
            info += f" - {k}: {_format_value(v)}"
        return info
