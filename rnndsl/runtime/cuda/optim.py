"""Optimizer steps on the device, with the optimizer's slots kept there.

train/optimizers.py owns the rules, the hyper-parameters, ``iterations`` and
the host copy of the slots (``optimizer._slots``, what ``state_dict()``
saves). `DeviceSlots` holds the device copy while one executor trains with
the optimizer:

* on the first update (or when the host copy was replaced, e.g. by
  ``load_state_dict``, or another engine updated it meanwhile) the host slots
  are copied to the device;
* each update then runs only on the device (kernels/cuda/optim.py);
* ``sync()`` copies the slots back into ``optimizer._slots``. The executor
  sets ``optimizer.device_sync = that sync`` so that state_dict() and a CPU
  update can call it first (the hook in train/optimizers.py).
"""

from __future__ import annotations

import numpy as np

from ...errors import CheckpointError, TrainingError
from ...train.optimizers import SGD, Adagrad, Adam, RMSprop


class DeviceSlots:
    def __init__(self, eng):
        self.eng = eng
        self.optimizer = None
        self.host_ref = None                  # the optimizer._slots dict the device copy came from
        self.slots: dict[str, dict[int, object]] = {}

    # --- binding -------------------------------------------------------------------------
    def bound_to(self, optimizer) -> bool:
        return (self.optimizer is optimizer and optimizer._slots is self.host_ref
                and getattr(optimizer, "device_sync", None) == self.sync)

    def bind(self, optimizer) -> None:
        """Make the device copy of optimizer's slots current."""
        if self.bound_to(optimizer):
            return
        other = getattr(optimizer, "device_sync", None)
        if other is not None and other != self.sync:
            other()                           # another device holds newer slots: bring them home first
        if self.optimizer is not None and self.optimizer is not optimizer:
            self.release()
        eng = self.eng
        self.slots = {name: {i: eng.upload(arr, eng.dtype) for i, arr in per.items()}
                      for name, per in optimizer._slots.items()}
        self.optimizer, self.host_ref = optimizer, optimizer._slots
        optimizer.device_sync = self.sync

    def sync(self) -> None:
        """Copy the device slots into optimizer._slots (for state_dict, or before a host update)."""
        opt = self.optimizer
        if opt is None or opt._slots is not self.host_ref:
            return                            # replaced on the host since: the host copy is newer
        for name, per in self.slots.items():
            host = opt._slots.setdefault(name, {})
            for i, arr in per.items():
                host[i] = arr.copy_to_host()

    def release(self) -> None:
        """Copy the slots home and stop holding them (the optimizer is trained elsewhere next)."""
        opt = self.optimizer
        if opt is None:
            return
        self.sync()
        if getattr(opt, "device_sync", None) == self.sync:
            opt.device_sync = None
        self.optimizer = self.host_ref = None
        self.slots = {}

    def slot(self, name, i, p):
        """The device slot `name` of parameter i, created as the host optimizer would create it."""
        per = self.slots.setdefault(name, {})
        arr = per.get(i)
        if arr is None:
            # as the host optimizer creates it (zeros, or Adagrad's initial accumulator), once
            init = self.optimizer._init_slot(name, np.empty(p.shape, self.eng.dtype))
            arr = per[i] = self.eng.upload(init, self.eng.dtype)
        elif arr.shape != p.shape:
            raise CheckpointError(f"optimizer slot '{name}/{i}' has shape {arr.shape} but "
                                  f"parameter {i} has shape {p.shape}")
        return arr


def apply_update(eng, slots: DeviceSlots, optimizer, params, grads) -> None:
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
    optimizer._prepare_step()                  # per-step scalars (Adam's bias-corrected rate)
    for i, p, g in live:
        P, Gr, S = eng.flat(p), eng.flat(g), scales[i]
        common = (P, Gr, S, clip, decay)

        def slot(name):
            return eng.flat(slots.slot(name, i, p)) if name in optimizer.slot_names else eng.none

        if isinstance(optimizer, Adam):
            eng.run(k.adam, p.size, *common, ty(optimizer._alpha), ty(1.0 - optimizer.beta_1),
                    ty(1.0 - optimizer.beta_2), ty(optimizer.epsilon), slot("m"), slot("v"), slot("vhat"))
        elif isinstance(optimizer, SGD):
            eng.run(k.sgd, p.size, *common, ty(lr), ty(optimizer.momentum), int(optimizer.nesterov),
                    slot("momentum"))
        elif isinstance(optimizer, RMSprop):
            eng.run(k.rmsprop, p.size, *common, ty(lr), ty(optimizer.rho), ty(1.0 - optimizer.rho),
                    ty(optimizer.epsilon), ty(optimizer.momentum), slot("velocity"), slot("momentum"),
                    slot("average_gradient"))
        elif isinstance(optimizer, Adagrad):
            eng.run(k.adagrad, p.size, *common, ty(lr), ty(optimizer.epsilon), slot("accumulator"))
        else:  # pragma: no cover - every optimizer of train/optimizers.py is handled above
            raise TrainingError(f"{type(optimizer).__name__} has no CUDA update rule")
    optimizer.iterations += 1


def _clip_scale(eng, gs, c):
    """A one-element device array: c / ||gs|| if that norm exceeds c, else 1."""
    acc = eng.upload([0.0], "float64")
    for g in gs:
        eng.sumsq(acc, g)
    scale = eng.empty(1)
    eng.opt.clip_scale[1, 1](scale, acc, float(c))
    return scale
