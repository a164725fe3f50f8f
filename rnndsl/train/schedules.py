"""Learning-rate schedules as Keras 3 defines them: the rate as a function of the step.

An optimizer built with a schedule as its ``learning_rate`` uses ``schedule(t)`` for
the update that takes ``iterations`` from t to t + 1 (the first update uses step 0),
as Keras does. The same schedules are written in a spec's train section:

    optimizer = adam(learning_rate=cosine_decay(0.003, 1000, warmup_steps=100, warmup_target=0.01))

A schedule's ``get_config()`` is JSON (it goes into checkpoints); ``get_schedule``
rebuilds one from that config, from Keras's ``{"class_name": ..., "config": ...}``
form, or from a name and options.
"""

from __future__ import annotations

import inspect
import math
import numbers

from rnndsl.errors import RnnError, did_you_mean

__all__ = ["LearningRateSchedule", "ExponentialDecay", "CosineDecay", "PiecewiseConstantDecay",
           "SCHEDULES", "get_schedule", "schedule_options", "serialize_schedule"]


def _number(name: str, value, lo=None, lo_open=False, whole=False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise RnnError(f"{name} must be a finite number, got {value!r}")
    if whole and value != int(value):
        raise RnnError(f"{name} must be a whole number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise RnnError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    return int(value) if whole else float(value)


class LearningRateSchedule:
    """A learning rate per step: ``schedule(step) -> float``; ``get_config()`` holds the
    constructor's arguments (plain JSON values)."""

    name = "schedule"
    # option -> what it takes, for a spec's checker: "number>=0", "number>0", "count>=0",
    # "fraction", "bool", "numbers" (a list of numbers)
    OPTIONS: dict[str, str] = {}
    REQUIRED: tuple[str, ...] = ()

    def __call__(self, step) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        return {k: getattr(self, k) for k in self.OPTIONS}

    @classmethod
    def from_config(cls, config: dict) -> "LearningRateSchedule":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    __hash__ = None


class ExponentialDecay(LearningRateSchedule):
    """lr(t) = initial_learning_rate * decay_rate ** (t / decay_steps); with staircase the
    exponent is floor(t / decay_steps), so the rate drops every decay_steps steps."""

    name = "exponential_decay"
    OPTIONS = {"initial_learning_rate": "number>=0", "decay_steps": "number>0", "decay_rate": "number>0",
               "staircase": "bool"}
    REQUIRED = ("initial_learning_rate", "decay_steps", "decay_rate")

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase: bool = False):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate, 0.0)
        self.decay_steps = _number("decay_steps", decay_steps, 0.0, lo_open=True)
        self.decay_rate = _number("decay_rate", decay_rate, 0.0, lo_open=True)
        self.staircase = bool(staircase)

    def __call__(self, step) -> float:
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        try:
            return self.initial_learning_rate * self.decay_rate ** p
        except OverflowError:       # a rate that grows past any float: the update is not finite, and said so
            return math.inf


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warm-up (Keras 3's CosineDecay).

    Without warmup_target: lr(t) = initial_learning_rate * d(min(t, decay_steps)), where
    d(s) = (1 - alpha) * (1 + cos(pi * s / decay_steps)) / 2 + alpha.
    With warmup_target: for t < warmup_steps the rate rises linearly from
    initial_learning_rate to warmup_target, lr(t) = initial + (target - initial) * t / warmup_steps;
    after it, lr(t) = warmup_target * d(min(t, warmup_steps + decay_steps) - warmup_steps)."""

    name = "cosine_decay"
    OPTIONS = {"initial_learning_rate": "number>=0", "decay_steps": "number>0", "alpha": "fraction",
               "warmup_target": "number>=0", "warmup_steps": "count>=0"}
    REQUIRED = ("initial_learning_rate", "decay_steps")

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate, 0.0)
        self.decay_steps = _number("decay_steps", decay_steps, 0.0, lo_open=True)
        self.alpha = _number("alpha", alpha, 0.0)
        if self.alpha > 1:
            raise RnnError(f"alpha must be in [0, 1] (the final fraction of the rate), got {alpha!r}")
        self.warmup_target = None if warmup_target is None else _number("warmup_target", warmup_target, 0.0)
        self.warmup_steps = _number("warmup_steps", warmup_steps, 0.0, whole=True)
        if self.warmup_steps and self.warmup_target is None:
            raise RnnError("warmup_steps needs warmup_target, the rate the warm-up rises to "
                           "(e.g. cosine_decay(0.0, 1000, warmup_steps=100, warmup_target=0.003))")

    def _decay(self, s: float, lr: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * s / self.decay_steps))
        return lr * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step) -> float:
        t = float(step)
        if self.warmup_target is None:
            return self._decay(min(t, self.decay_steps), self.initial_learning_rate)
        t = min(t, self.decay_steps + self.warmup_steps)
        if t < self.warmup_steps:
            lr0 = self.initial_learning_rate
            return (self.warmup_target - lr0) * (t / self.warmup_steps) + lr0
        return self._decay(t - self.warmup_steps, self.warmup_target)


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while t <= boundaries[0], values[i] while boundaries[i-1] < t <= boundaries[i],
    values[-1] after the last boundary (Keras's PiecewiseConstantDecay)."""

    name = "piecewise_constant_decay"
    OPTIONS = {"boundaries": "numbers", "values": "numbers"}
    REQUIRED = ("boundaries", "values")

    def __init__(self, boundaries, values):
        try:
            boundaries, values = list(boundaries), list(values)
        except TypeError:
            raise RnnError("boundaries and values must be lists of numbers") from None
        self.boundaries = [_number("a boundary", b) for b in boundaries]
        self.values = [_number("a value", v, 0.0) for v in values]
        if len(self.boundaries) != len(self.values) - 1:
            raise RnnError(f"piecewise_constant_decay needs one value more than boundaries, got "
                           f"{len(self.boundaries)} boundaries and {len(self.values)} values")
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise RnnError(f"the boundaries must increase, got {self.boundaries}")

    def __call__(self, step) -> float:
        t = float(step)
        for b, v in zip(self.boundaries, self.values):
            if t <= b:
                return v
        return self.values[-1]


# The schedule registry: the names a spec calls them by -> classes (Keras's class names are
# taken too, in get_schedule).
SCHEDULES = {cls.name: cls for cls in (ExponentialDecay, CosineDecay, PiecewiseConstantDecay)}
_BY_CLASS = {cls.__name__: cls for cls in SCHEDULES.values()}


def schedule_options(name: str) -> list[str]:
    """The options of a schedule in its constructor's order (its positional order too)."""
    sig = inspect.signature(SCHEDULES[name].__init__)
    return [n for n in sig.parameters if n != "self"]


def serialize_schedule(schedule: LearningRateSchedule) -> dict:
    """Keras's form, {"class_name": ..., "config": {...}}: plain JSON."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def config_parts(identifier: dict, overrides: dict, what: str) -> tuple:
    """(name, options) of a config dict: Keras's {"class_name": ..., "config": {...}} (its
    display name dropped) or rnndsl's flat {"name": ..., ...}; overrides set options."""
    cfg = dict(identifier)
    if "class_name" in cfg:
        name = cfg["class_name"]
        inner = cfg.get("config") or {}
        if not isinstance(inner, dict):
            raise RnnError(f"{what}'s config must be an object, got {type(inner).__name__}")
        cfg = dict(inner)
        cfg.pop("name", None)            # Keras's configs carry a display name
    else:
        name = cfg.pop("name", None)
        if name is None:
            raise RnnError(f"{what} config needs a 'name' (or Keras's 'class_name' and 'config')")
    cfg.update(overrides)
    return name, cfg


def check_known_options(cfg: dict, allowed: list, owner: str) -> None:
    """An RnnError naming the first option of cfg that `owner` does not take."""
    for k in cfg:
        if k not in allowed:
            hint = did_you_mean(str(k), allowed)
            raise RnnError(f"unknown option {str(k)[:60]!r} for {owner}" + (f"; {hint}" if hint else "")
                           + f" (options: {', '.join(allowed)})")


def get_schedule(identifier, **options) -> LearningRateSchedule:
    """A schedule from a LearningRateSchedule (returned as is), a config dict
    ({"class_name": "CosineDecay", "config": {...}}, or {"name": "cosine_decay", ...}),
    or a name and options."""
    if isinstance(identifier, LearningRateSchedule) and not options:
        return identifier
    if isinstance(identifier, dict):
        name, cfg = config_parts(identifier, options, "a schedule")
    elif isinstance(identifier, str):
        name, cfg = identifier, dict(options)
    else:
        raise RnnError(f"a learning-rate schedule must be a schedule, a config dict or a name, "
                       f"got {type(identifier).__name__}")
    cls = _BY_CLASS.get(name) if isinstance(name, str) else None
    if cls is None and isinstance(name, str):
        cls = SCHEDULES.get(name.strip().lower())
    if cls is None:
        hint = did_you_mean(str(name), SCHEDULES) if isinstance(name, str) else None
        raise RnnError(f"unknown learning-rate schedule {str(name)[:60]!r}" + (f"; {hint}" if hint else "")
                       + f" (known: {', '.join(SCHEDULES)})")
    check_known_options(cfg, schedule_options(cls.name), cls.name)
    missing = [k for k in cls.REQUIRED if k not in cfg]
    if missing:
        raise RnnError(f"{cls.name} needs {', '.join(missing)}")
    return cls(**cfg)
