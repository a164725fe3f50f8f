"""Optimizer steps on the device, with the optimizer's slots kept there.

The optimizer (train/optimizers.py, above this package: never imported here)
owns the rules, the hyper-parameters, ``iterations`` and the host copy of the
slots (what ``state_dict()`` saves); this module uses only the `DeviceOptimizer`
protocol below. `DeviceSlots` holds the device copy while one executor trains
with the optimizer:

* on the first update (or when the host copy was replaced, e.g. by
  ``load_state_dict``, or another engine updated it meanwhile) the host slots
  are copied to the device;
* each update then runs only on the device (kernels/cuda/optim.py);
* ``sync()`` copies the slots back into ``optimizer.host_slots``. The executor
  registers it with ``optimizer.attach_device(sync)`` so that state_dict() and
  a CPU update call it first.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ...errors import CheckpointError, TrainingError


class DeviceOptimizer(Protocol):
    """What a device update reads and writes of an optimizer."""

    update_rule: str                    # "sgd", "adam", "rmsprop" or "adagrad"
    slot_names: tuple[str, ...]
    iterations: int
    learning_rate: float
    weight_decay: float | None
    clipnorm: float | None
    clipvalue: float | None
    global_clipnorm: float | None

    @property
    def host_slots(self) -> dict[str, dict[int, np.ndarray]]: ...        # {slot: {param index: array}}

    @property
    def device_sync(self) -> Callable[[], None] | None: ...

    def init_slot(self, name: str, like: np.ndarray) -> np.ndarray: ...

    def step_hyperparameters(self) -> dict: ...                           # scalars for step iterations + 1

    def attach_device(self, sync: Callable[[], None]) -> None: ...

    def detach_device(self, sync: Callable[[], None]) -> None: ...


class DeviceSlots:
    def __init__(self, eng):
        self.eng = eng
        self.optimizer = None
        self.host_ref = None                  # the optimizer.host_slots dict the device copy came from
        self.slots: dict[str, dict[int, object]] = {}

    # --- binding -------------------------------------------------------------------------
    def bound_to(self, optimizer) -> bool:
        return (self.optimizer is optimizer and optimizer.host_slots is self.host_ref
                and optimizer.device_sync == self.sync)

    def bind(self, optimizer) -> None:
        """Make the device copy of optimizer's slots current."""
        if self.bound_to(optimizer):
            return
        other = optimizer.device_sync
        if other is not None and other != self.sync:
            other()                           # another device holds newer slots: bring them home first
        if self.optimizer is not None and self.optimizer is not optimizer:
            self.release()
        eng = self.eng
        self.slots = {name: {i: eng.upload(arr, eng.dtype) for i, arr in per.items()}
                      for name, per in optimizer.host_slots.items()}
        self.optimizer, self.host_ref = optimizer, optimizer.host_slots
        optimizer.attach_device(self.sync)

    def sync(self) -> None:
        """Copy the device slots into optimizer.host_slots (for state_dict, or before a host update)."""
        opt = self.optimizer
        if opt is None or opt.host_slots is not self.host_ref:
            return                            # replaced on the host since: the host copy is newer
        for name, per in self.slots.items():
            host = opt.host_slots.setdefault(name, {})
            for i, arr in per.items():
                host[i] = arr.copy_to_host()

    def release(self) -> None:
        """Copy the slots home and stop holding them (the optimizer is trained elsewhere next)."""
        opt = self.optimizer
        if opt is None:
            return
        self.sync()
        opt.detach_device(self.sync)
        self.optimizer = self.host_ref = None
        self.slots = {}

    def slot(self, name, i, p):
        """The device slot `name` of parameter i, created as the host optimizer would create it."""
        per = self.slots.setdefault(name, {})
        arr = per.get(i)
        if arr is None:
            # as the host optimizer creates it (zeros, or Adagrad's initial accumulator), once
            init = self.optimizer.init_slot(name, np.empty(p.shape, self.eng.dtype))
            arr = per[i] = self.eng.upload(init, self.eng.dtype)
        elif arr.shape != p.shape:
            raise CheckpointError(f"optimizer slot '{name}/{i}' has shape {arr.shape} but "
                                  f"parameter {i} has shape {p.shape}")
        return arr


def apply_update(eng, slots: DeviceSlots, optimizer: DeviceOptimizer, params, grads) -> None:
    """One optimizer step of the device params with the device grads (None: skipped)."""
    if len(params) != len(grads):
        raise TrainingError(f"optimizer got {len(params)} parameters but {len(grads)} gradients")
    live = [(i, p, g) for i, (p, g) in enumerate(zip(params, grads)) if g is not None]
    for i, p, g in live:
        if g.shape != p.shape:
            raise TrainingError(f"gradient {i} has shape {g.shape} but its parameter has {p.shape}")
    slots.bind(optimizer)
    ty = eng.ty
    k = eng.opt
    # clipping: a per-gradient or global scale computed on the device, or an element-wise clip
    scales = {i: eng.none for i, _, _ in live}
    if optimizer.clipnorm is not None:
        for i, _, g in live:
            scales[i] = _clip_scale(eng, [g], optimizer.clipnorm)
    elif optimizer.global_clipnorm is not None:
        s = _clip_scale(eng, [g for _, _, g in live], optimizer.global_clipnorm)
        scales = {i: s for i, _, _ in live}
    clip = ty(optimizer.clipvalue if optimizer.clipvalue is not None else 0.0)
    lr = optimizer.learning_rate
    decay = ty(lr * optimizer.weight_decay if optimizer.weight_decay else 0.0)
    h = optimizer.step_hyperparameters()       # per-step scalars (Adam's bias-corrected rate)
    rule = optimizer.update_rule
    for i, p, g in live:
        P, Gr, S = eng.flat(p), eng.flat(g), scales[i]
        common = (P, Gr, S, clip, decay)

        def slot(name):
            return eng.flat(slots.slot(name, i, p)) if name in optimizer.slot_names else eng.none

        if rule == "adam":
            eng.run(k.adam, p.size, *common, ty(h["alpha"]), ty(1.0 - h["beta_1"]),
                    ty(1.0 - h["beta_2"]), ty(h["epsilon"]), slot("m"), slot("v"), slot("vhat"))
        elif rule == "sgd":
            eng.run(k.sgd, p.size, *common, ty(h["learning_rate"]), ty(h["momentum"]), int(h["nesterov"]),
                    slot("momentum"))
        elif rule == "rmsprop":
            eng.run(k.rmsprop, p.size, *common, ty(h["learning_rate"]), ty(h["rho"]), ty(1.0 - h["rho"]),
                    ty(h["epsilon"]), ty(h["momentum"]), slot("velocity"), slot("momentum"),
                    slot("average_gradient"))
        elif rule == "adagrad":
            eng.run(k.adagrad, p.size, *common, ty(h["learning_rate"]), ty(h["epsilon"]), slot("accumulator"))
        else:
            raise TrainingError(f"{type(optimizer).__name__} has no CUDA update rule "
                                f"(update_rule {rule!r}; known: sgd, adam, rmsprop, adagrad)")
    optimizer.iterations += 1


def _clip_scale(eng, gs, c):
    """A one-element device array: c / ||gs|| if that norm exceeds c, else 1."""
    acc = eng.upload([0.0], "float64")
    for g in gs:
        eng.sumsq(acc, g)
    scale = eng.empty(1)
    eng.opt.clip_scale[1, 1](scale, acc, float(c))
    return scale
