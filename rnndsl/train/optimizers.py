"""Optimizers with Keras 3's update rules, updating NumPy arrays in place.

One step, ``apply(params, grads)``, does as Keras 3 does:

1. clip the gradients: ``clipnorm`` (each gradient to L2 norm <= c),
   ``global_clipnorm`` (all gradients together), or ``clipvalue`` (elementwise
   to [-c, c]); at most one of the three may be set;
2. decoupled weight decay: ``w -= lr * weight_decay * w``;
3. the update rule of the optimizer (see each class);
4. ``iterations += 1``.

``learning_rate`` is a number or a schedule (train/schedules.py): with a schedule, the
step that takes ``iterations`` from t to t + 1 uses ``schedule(t)``, and reading
``optimizer.learning_rate`` gives that rate; setting it (as ReduceLROnPlateau and
LearningRateScheduler do) is allowed only for a number, as in Keras.

Slots (momenta, accumulators) are created on the first gradient a parameter
gets and named by its position: ``state_dict()`` holds ``"iterations"`` and
``"<slot>/<index>"`` arrays, e.g. ``"m/0"``, ``"v/0"`` for Adam.

The public interface a device executor uses (runtime/cuda/optim.py, which never
imports this module): ``update_rule``, ``slot_names``, ``host_slots``,
``init_slot``, ``step_hyperparameters()``, ``iterations`` and the clipping and
decay attributes; ``attach_device`` / ``detach_device`` register the callable
that copies device-held slots home (``device_sync``), which ``slots``,
``state_dict()`` and a host ``apply()`` call first.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
from scipy.linalg.blas import get_blas_funcs

from rnndsl.errors import CheckpointError, RnnError, TrainingError, did_you_mean

from ..kernels.cpu.ops import abs_sum
from .schedules import LearningRateSchedule, check_known_options, config_parts, get_schedule, serialize_schedule

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "get_optimizer", "OPTIMIZERS",
           "OPTIMIZER_COMMON", "optimizer_options", "flag_options"]


def _check_range(name: str, value, lo=None, hi=None, lo_open=False, hi_open=False, optional=False):
    if value is None and optional:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RnnError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise RnnError(f"{name} must be finite, got {value!r}")
    bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (
        hi is not None and (v >= hi if hi_open else v > hi)
    )
    if bad:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise RnnError(f"{name} must be in {lb}{lo if lo is not None else '-inf'}, "
                       f"{hi if hi is not None else 'inf'}{rb}, got {value!r}")
    return v


class Optimizer:
    """Base class: clipping, weight decay, iterations, slots and their state."""

    name = "optimizer"
    update_rule = ""                            # the rule a device executor runs: sgd, adam, rmsprop, adagrad
    _device_sync = None
    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float = 0.001, *, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None):
        self._schedule = None
        if isinstance(learning_rate, (LearningRateSchedule, dict)):
            self._schedule = get_schedule(learning_rate)
            self._lr_at = (None, 0.0)
        else:
            self._lr = _check_range("learning_rate", learning_rate, lo=0.0)
        self.weight_decay = _check_range("weight_decay", weight_decay, lo=0.0, optional=True)
        self.clipnorm = _check_range("clipnorm", clipnorm, lo=0.0, lo_open=True, optional=True)
        self.clipvalue = _check_range("clipvalue", clipvalue, lo=0.0, lo_open=True, optional=True)
        self.global_clipnorm = _check_range("global_clipnorm", global_clipnorm, lo=0.0,
                                            lo_open=True, optional=True)
        n_clip = sum(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm))
        if n_clip > 1:
            raise RnnError("only one of clipnorm, clipvalue and global_clipnorm can be set "
                           f"(got clipnorm={clipnorm}, clipvalue={clipvalue}, "
                           f"global_clipnorm={global_clipnorm})")
        self.iterations = 0
        # slot name -> {param index -> array}; _scratch: dtype -> the work buffer (_work)
        self._slots: dict[str, dict[int, np.ndarray]] = {s: {} for s in self.slot_names}
        self._scratch: dict = {}
        self._clipbuf: dict[int, np.ndarray] = {}
        self._kept: dict = {}                  # keep_state's copies, reused step to step

    # ----- the learning rate --------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The rate of the coming step: the number, or the schedule at step ``iterations``."""
        if self._schedule is None:
            return self._lr
        at = self._lr_at        # the rules read it once per parameter: computed once per step
        if at[0] != self.iterations:
            at = self._lr_at = (self.iterations, float(self._schedule(self.iterations)))
        return at[1]

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if getattr(self, "_schedule", None) is not None:
            raise TrainingError(f"this optimizer's learning rate follows a schedule ({self._schedule!r}); "
                                "it cannot be set: build the optimizer with a number to change its rate "
                                "from a callback")
        if isinstance(value, (LearningRateSchedule, dict)):
            raise TrainingError("a schedule is given when the optimizer is built: "
                                "Adam(learning_rate=CosineDecay(...)), not by setting learning_rate")
        try:
            self._lr = float(value)     # as Keras's assign: unchecked (a test may set inf on purpose)
        except (TypeError, ValueError):
            raise TrainingError(f"learning_rate must be a number, got {value!r}") from None

    @property
    def schedule(self) -> LearningRateSchedule | None:
        """The learning-rate schedule, or None for a fixed (settable) rate."""
        return self._schedule

    # ----- the slots and the device protocol ------------------------------
    @property
    def slots(self) -> dict[str, dict[int, np.ndarray]]:
        """The slots, {slot name: {parameter index: array}}, current (a device's copies are
        brought home first). The arrays are the optimizer's own: writing them changes its state."""
        if self._device_sync is not None:
            self._device_sync()
        return self._slots

    @property
    def host_slots(self) -> dict[str, dict[int, np.ndarray]]:
        """The host copy of the slots as it is (no sync): for a device executor, which
        compares its identity to notice a replaced state and writes its copies into it."""
        return self._slots

    def init_slot(self, name: str, like: np.ndarray) -> np.ndarray:
        """A fresh slot `name` for a parameter shaped and typed like `like` (zeros, or Adagrad's
        initial accumulator value)."""
        return self._init_slot(name, like)

    def step_hyperparameters(self) -> dict:
        """The scalars of the rule for the coming step (iterations + 1), e.g. Adam's
        bias-corrected rate alpha; clipping and weight decay are the attributes of the same names."""
        return {"learning_rate": self.learning_rate}

    @property
    def device_sync(self):
        """The callable that copies device-held slots home, or None (see attach_device)."""
        return self._device_sync

    def attach_device(self, sync) -> None:
        """A device executor now holds the newest slots; `sync()` copies them into host_slots."""
        self._device_sync = sync

    def detach_device(self, sync) -> None:
        """The device executor that registered `sync` no longer holds the slots."""
        if self._device_sync == sync:
            self._device_sync = None

    # ----- the step -------------------------------------------------------
    def apply(self, params: list[np.ndarray], grads: list[np.ndarray | None]) -> None:
        """One update of ``params`` in place; ``None`` gradients are skipped."""
        if self._device_sync is not None:         # the slots were last updated on a GPU: bring them home
            sync, self._device_sync = self._device_sync, None
            sync()
        if len(params) != len(grads):
            raise TrainingError(f"optimizer got {len(params)} parameters but {len(grads)} gradients")
        live = []
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TrainingError(f"parameter {i} must be a float ndarray, got "
                                    f"{type(p).__name__} {getattr(p, 'dtype', '')}")
            g = np.asarray(g)
            if g.shape != p.shape:
                raise TrainingError(f"gradient {i} has shape {g.shape} but its parameter has {p.shape}")
            live.append((i, p, g))
        live = self._clip(live)
        lr = self.learning_rate
        if self.weight_decay:
            for i, p, _ in live:
                tmp = self._work(i, p)
                np.multiply(p, lr * self.weight_decay, out=tmp)
                p -= tmp
        self._prepare_step()
        for i, p, g in live:
            self._update(i, p, g, self._slots_for(i, p), None if self._in_place(p, g) else self._work(i, p))
        self.iterations += 1

    def _clip(self, live):
        if self.clipnorm is not None:
            out = []
            for i, p, g in live:
                norm = float(np.sqrt(np.vdot(g, g).real))
                if norm > self.clipnorm:
                    g = self._scaled(i, g, self.clipnorm / norm)
                out.append((i, p, g))
            return out
        if self.global_clipnorm is not None:
            gnorm = math.sqrt(sum(float(np.vdot(g, g).real) for _, _, g in live))
            if gnorm > self.global_clipnorm:
                s = self.global_clipnorm / gnorm
                return [(i, p, self._scaled(i, g, s)) for i, p, g in live]
            return live
        if self.clipvalue is not None:
            c = self.clipvalue
            return [(i, p, np.clip(g, -c, c, out=self._buf(i, g))) for i, p, g in live]
        return live

    def _buf(self, i, g):
        # The caller's gradient arrays are never modified: clipping writes here.
        b = self._clipbuf.get(i)
        if b is None or b.shape != g.shape or b.dtype != g.dtype:
            b = self._clipbuf[i] = np.empty_like(g)
        return b

    def _scaled(self, i, g, s):
        return np.multiply(g, s, out=self._buf(i, g))

    def _slots_for(self, i, p):
        out = {}
        for name in self.slot_names:
            arr = self._slots[name].get(i)
            if arr is None:
                arr = self._slots[name][i] = self._init_slot(name, p)
            elif arr.shape != p.shape:
                raise CheckpointError(f"optimizer slot '{name}/{i}' has shape {arr.shape} but "
                                      f"parameter {i} has shape {p.shape}")
            elif arr.dtype != p.dtype:
                arr = self._slots[name][i] = arr.astype(p.dtype)
            out[name] = arr
        return out

    def _work(self, i, p):
        """A work array of p's shape and dtype. The updates run one after another, so one
        buffer per dtype, of the largest parameter's size, serves them all (not a copy of
        every weight: the train step's peak memory, bench/README.md)."""
        w = self._scratch.get(p.dtype)
        if w is None or w.size < p.size:
            w = self._scratch[p.dtype] = np.empty(p.size, p.dtype)
        return w[:p.size].reshape(p.shape)

    def _in_place(self, p, g) -> bool:
        """Whether _update needs no work array for this parameter (it is then given None)."""
        return False

    def stays_finite(self, params, grads, grad_sums=None) -> bool:
        """Whether the next apply() provably leaves every parameter finite, from bounds on
        the (finite) parameters and gradients alone (then the caller keeps no copy to go
        back to); False where it cannot tell. grad_sums: each gradient's sum |g| where the
        caller has them (None: computed here)."""
        return False

    def _init_slot(self, name, p):
        return np.zeros_like(p)

    def _prepare_step(self):
        """Per-step scalars shared by all parameters (e.g. Adam's bias correction)."""

    def _update(self, i, p, g, slots, tmp):  # pragma: no cover - abstract
        raise NotImplementedError

    # ----- undoing one step ---------------------------------------------
    def keep_state(self) -> None:
        """Copy the slots and the step count aside (into arrays kept for the next step), so
        that restore_state() can undo the next apply()."""
        kept = self._kept
        self._kept = {"iterations": self.iterations}
        for name, per in self._slots.items():
            for i, arr in per.items():
                old = kept.get((name, i))
                if old is None or old.shape != arr.shape or old.dtype != arr.dtype:
                    old = np.empty_like(arr)
                np.copyto(old, arr)
                self._kept[name, i] = old

    def restore_state(self) -> None:
        """Undo the apply() since keep_state(): its slots back, slots it created dropped."""
        kept = self._kept
        self.iterations = kept["iterations"]
        for name, per in self._slots.items():
            for i in list(per):
                if (name, i) in kept:
                    np.copyto(per[i], kept[name, i])
                else:
                    del per[i]

    # ----- state ----------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat copy of the state: ``iterations`` and ``<slot>/<param index>``."""
        if self._device_sync is not None:
            self._device_sync()
        d = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for name, per in self._slots.items():
            for i, arr in sorted(per.items()):
                d[f"{name}/{i}"] = arr.copy()
        return d

    def load_state_dict(self, d: dict) -> None:
        """Restore a state_dict(); shapes are checked on the next apply()."""
        if "iterations" not in d:
            raise CheckpointError("optimizer state has no 'iterations' entry")
        slots: dict[str, dict[int, np.ndarray]] = {s: {} for s in self.slot_names}
        for key, value in d.items():
            if key == "iterations":
                continue
            name, _, idx = key.rpartition("/")
            if name not in slots or not idx.isdigit():
                hint = did_you_mean(name, self.slot_names) if name else None
                raise CheckpointError(
                    f"optimizer state entry '{key}' does not belong to {type(self).__name__} "
                    f"(slots: {', '.join(self.slot_names) or 'none'})" + (f"; {hint}" if hint else ""))
            slots[name][int(idx)] = np.array(value, copy=True)
        self.iterations = int(np.asarray(d["iterations"]))
        self._slots = slots

    def get_config(self) -> dict:
        """JSON-able constructor arguments plus ``name``; get_optimizer(config) rebuilds."""
        cfg = {"name": self.name}
        for p in optimizer_options(type(self)):
            if p == "learning_rate" and self._schedule is not None:
                cfg[p] = serialize_schedule(self._schedule)
                continue
            v = getattr(self, p)
            cfg[p] = v if not isinstance(v, np.generic) else v.item()
        return cfg

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


_AXPY: dict = {}


def _axpy(dtype):
    """BLAS axpy (y += a x) for dtype, looked up once (get_blas_funcs takes microseconds)."""
    f = _AXPY.get(dtype)
    if f is None:
        f = _AXPY[dtype] = get_blas_funcs("axpy", (np.empty(0, dtype),))
    return f


class SGD(Optimizer):
    """Keras 3 SGD. momentum 0: w -= lr*g. Otherwise m = momentum*m - lr*g, then
    w += m, or with nesterov w += momentum*m - lr*g (using the new m)."""

    name = "sgd"
    update_rule = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 **kw):
        self.momentum = _check_range("momentum", momentum, 0.0, 1.0)
        self.nesterov = bool(nesterov)
        self.slot_names = ("momentum",) if self.momentum else ()
        super().__init__(learning_rate, **kw)

    def step_hyperparameters(self) -> dict:
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "nesterov": self.nesterov}

    def stays_finite(self, params, grads, grad_sums=None) -> bool:
        # w - lr g, rounded twice at most: |w'| <= (|w| + lr |g| (1 + e)) (1 + e) stays below
        # the largest float while sum|w| + lr sum|g| is under a quarter of it (NaN or inf
        # anywhere fails the test)
        if self.momentum or self.weight_decay or not params:
            return False
        lr = float(self.learning_rate)
        rates = {}                                       # dtype -> (the rate as the update sees it, bound)
        for k, (p, g) in enumerate(zip(params, grads)):
            dt = p.dtype
            if dt not in rates:
                if dt.kind != "f":
                    return False
                with np.errstate(over="ignore"):
                    rates[dt] = (abs(float(dt.type(lr))), float(np.finfo(dt).max) / 4)    # lr in p's dtype
            lr_p, bound = rates[dt]
            g_sum = abs_sum(np.ravel(g)) if grad_sums is None else grad_sums[k]
            if not (abs_sum(p.reshape(-1)) + lr_p * g_sum < bound):
                return False                             # (an inf rate, or NaN anywhere, fails too)
        return True

    def _in_place(self, p, g) -> bool:
        return (not self.momentum and p.flags.c_contiguous and g.flags.c_contiguous and g.dtype == p.dtype
                and p.dtype.kind == "f")

    def _update(self, i, p, g, slots, tmp):
        lr = self.learning_rate
        if not self.momentum:
            if tmp is None:
                # BLAS axpy, p += (-lr) g in place: one pass where multiply-then-subtract
                # takes two (bench/README.md, "Measurements behind the code")
                _axpy(p.dtype)(g.reshape(-1), p.reshape(-1), a=-lr)
                return
            np.multiply(g, lr, out=tmp)
            p -= tmp
            return
        m = slots["momentum"]
        m *= self.momentum
        np.multiply(g, lr, out=tmp)
        m -= tmp
        if self.nesterov:
            np.multiply(m, self.momentum, out=tmp)
            p += tmp
            np.multiply(g, lr, out=tmp)
            p -= tmp
        else:
            p += m


class Adam(Optimizer):
    """Keras 3 Adam. t = iterations + 1; alpha = lr*sqrt(1-b2^t)/(1-b1^t);
    m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha*m/(sqrt(v) + eps).
    amsgrad keeps vhat = max(vhat, v) and uses it in place of v."""

    name = "adam"
    update_rule = "adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kw):
        self.beta_1 = _check_range("beta_1", beta_1, 0.0, 1.0, hi_open=True)
        self.beta_2 = _check_range("beta_2", beta_2, 0.0, 1.0, hi_open=True)
        self.epsilon = _check_range("epsilon", epsilon, lo=0.0)
        self.amsgrad = bool(amsgrad)
        self.slot_names = ("m", "v", "vhat") if self.amsgrad else ("m", "v")
        super().__init__(learning_rate, **kw)

    def _prepare_step(self):
        self._alpha = self.step_hyperparameters()["alpha"]

    def step_hyperparameters(self) -> dict:
        """alpha = lr*sqrt(1-b2^t)/(1-b1^t) with t = iterations + 1, and the rule's constants."""
        t = self.iterations + 1
        alpha = self.learning_rate * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        return {"learning_rate": self.learning_rate, "alpha": alpha, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}

    def _update(self, i, p, g, slots, tmp):
        m, v = slots["m"], slots["v"]
        np.subtract(g, m, out=tmp)
        tmp *= 1.0 - self.beta_1
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= 1.0 - self.beta_2
        v += tmp
        if self.amsgrad:
            vhat = slots["vhat"]
            np.maximum(vhat, v, out=vhat)
            v = vhat
        np.sqrt(v, out=tmp)
        tmp += self.epsilon
        np.divide(m, tmp, out=tmp)
        tmp *= self._alpha
        p -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay on by default (0.004, as Keras 3)."""

    name = "adamw"

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, **kw):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kw)


class RMSprop(Optimizer):
    """Keras 3 RMSprop. v = rho*v + (1-rho)*g^2; centered: a = rho*a + (1-rho)*g
    and denom = v - a^2 + eps, else denom = v + eps; inc = lr*g/sqrt(denom);
    momentum 0: w -= inc, else mom = momentum*mom + inc; w -= mom."""

    name = "rmsprop"
    update_rule = "rmsprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kw):
        self.rho = _check_range("rho", rho, 0.0, 1.0)
        self.momentum = _check_range("momentum", momentum, 0.0, 1.0)
        self.epsilon = _check_range("epsilon", epsilon, lo=0.0)
        self.centered = bool(centered)
        slots = ["velocity"]
        if self.momentum:
            slots.append("momentum")
        if self.centered:
            slots.append("average_gradient")
        self.slot_names = tuple(slots)
        super().__init__(learning_rate, **kw)

    def step_hyperparameters(self) -> dict:
        return {"learning_rate": self.learning_rate, "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}

    def _update(self, i, p, g, slots, tmp):
        rho, lr = self.rho, self.learning_rate
        v = slots["velocity"]
        v *= rho
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - rho
        v += tmp
        if self.centered:
            a = slots["average_gradient"]
            a *= rho
            np.multiply(g, 1.0 - rho, out=tmp)
            a += tmp
            np.multiply(a, a, out=tmp)
            np.subtract(v, tmp, out=tmp)
            tmp += self.epsilon
        else:
            np.add(v, self.epsilon, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        if self.momentum:
            mom = slots["momentum"]
            mom *= self.momentum
            mom += tmp
            p -= mom
        else:
            p -= tmp


class Adagrad(Optimizer):
    """Keras 3 Adagrad. acc starts at initial_accumulator_value; acc += g^2;
    w -= lr*g/sqrt(acc + eps)."""

    name = "adagrad"
    update_rule = "adagrad"
    slot_names = ("accumulator",)

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, **kw):
        self.initial_accumulator_value = _check_range(
            "initial_accumulator_value", initial_accumulator_value, lo=0.0)
        self.epsilon = _check_range("epsilon", epsilon, lo=0.0)
        super().__init__(learning_rate, **kw)

    def _init_slot(self, name, p):
        return np.full_like(p, self.initial_accumulator_value)

    def step_hyperparameters(self) -> dict:
        return {"learning_rate": self.learning_rate, "epsilon": self.epsilon}

    def _update(self, i, p, g, slots, tmp):
        acc = slots["accumulator"]
        np.multiply(g, g, out=tmp)
        acc += tmp
        np.add(acc, self.epsilon, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(g, tmp, out=tmp)
        tmp *= self.learning_rate
        p -= tmp


# The optimizer registry: names -> classes. Each takes its constructor's options and the
# ones every optimizer takes (OPTIMIZER_COMMON); get_optimizer and a spec's
# `optimizer = name(...)` both read them through optimizer_options.
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}
OPTIMIZER_COMMON = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm")


def optimizer_options(name_or_cls) -> list[str]:
    """The options of an optimizer (a name in OPTIMIZERS or its class): its constructor's,
    in signature order, then OPTIMIZER_COMMON."""
    cls = OPTIMIZERS[name_or_cls] if isinstance(name_or_cls, str) else name_or_cls
    sig = inspect.signature(cls.__init__)
    names = [n for n, p in sig.parameters.items()
             if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    return names + [o for o in OPTIMIZER_COMMON if o not in names]


def flag_options(name: str) -> tuple[str, ...]:
    """The options of an optimizer that are true/false (their default is a bool); the
    others are numbers."""
    sig = inspect.signature(OPTIMIZERS[name].__init__)
    return tuple(n for n, p in sig.parameters.items() if isinstance(p.default, bool))


def get_optimizer(identifier="adam", **overrides) -> Optimizer:
    """An Optimizer from a name ("adam", "Adam"), a config dict (``get_config()``
    output, or Keras's ``{"class_name": ..., "config": {...}}``) or an Optimizer.
    ``overrides`` set options (for an Optimizer instance a new one is built)."""
    if isinstance(identifier, Optimizer):
        if not overrides:
            return identifier
        identifier = identifier.get_config()
    if isinstance(identifier, dict):
        name, cfg = config_parts(identifier, overrides, "an optimizer")
    elif isinstance(identifier, str):
        name, cfg = identifier, dict(overrides)
    else:
        raise RnnError(f"optimizer must be a name, a config dict or an Optimizer, got "
                       f"{type(identifier).__name__}")
    key = str(name).strip().lower()
    if key not in OPTIMIZERS:
        hint = did_you_mean(key, OPTIMIZERS)
        raise RnnError(f"unknown optimizer '{name}'" + (f"; {hint}" if hint else "")
                       + f" (known: {', '.join(OPTIMIZERS)})")
    cls = OPTIMIZERS[key]
    check_known_options(cfg, optimizer_options(cls), f"optimizer '{key}'")
    return cls(**cfg)
