"""The CUDA executor: the CPU Executor's interface, with everything on the device.

Weights, activations, gradients, stateful states and the optimizer's slots
live in device memory across layers and batches. Per call only these cross
the bus: the inputs (and dropout masks, drawn on the host so that both
engines draw the same numbers) on the way in, the graph's outputs once at the
end of forward, the output gradients at the start of backward and the weight
and input gradients once at its end (the train loop checks them for NaN on
the host; apply_update then reuses the device copies). The time loops run
on the host, launching per step one GEMM and one fused kernel; nothing is
copied per step. Kernels and launch geometry: rnndsl/kernels/cuda.

The layer code is in layers.py, recurrent.py and cells.py (the recurrent plumbing
shared with the CPU engine is rnndsl/runtime/recurrent.py), device helpers in
device.py, optimizer steps in optim.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...graph.graph import Graph, Node
from ...errors import NonFiniteError
from ..executor import Executor, Tape
from ..tensor import Act
from .device import DAct, DeviceOps
from .layers import check_supported, forward_node
from .optim import DeviceSlots, apply_update

__all__ = ["CudaExecutor", "DAct"]


@dataclass
class DeviceCtx:
    """What a device layer sees besides its weights and inputs (as executor.RunCtx)."""

    training: bool
    rng: np.random.Generator
    executor: "CudaExecutor"
    updates: list = field(default_factory=list)   # (target, new device value): applied by a train step
    carry: dict | None = None     # decoding (runtime/decode.py)

    def stateful_state(self, node: Node, batch: int):
        return self.executor.stateful_state(node, batch)

    def keep_state(self, node: Node, state: tuple) -> None:
        # the final-state buffers belong to this call and are never written again: no copy
        self.executor.states[node.id] = tuple(state)


class CudaExecutor(Executor):
    """Executor whose params, states and tape live on the GPU (or numba's simulator).

    Initial weights are drawn on the host exactly as the CPU executor draws
    them, then copied, so the same seed gives the same model on both.
    """

    def __init__(self, graph: Graph, dtype: str = "float32", seed: int = 0):
        check_supported(graph)
        super().__init__(graph, dtype, seed)
        self.eng = DeviceOps(self.dtype)
        self.params = [self.eng.upload(p) for p in self.params]
        self.opt_slots = DeviceSlots(self.eng)
        self._grads = None            # (host grads returned by backward, their device copies)

    # --- weights -------------------------------------------------------------------------
    def read_weights(self) -> list[np.ndarray]:
        return [p.copy_to_host() for p in self.params]

    def write_weights(self, weights) -> None:
        with self.writing_weights():
            for p, value in zip(self.params, weights):
                p.copy_to_device(np.ascontiguousarray(value, dtype=self.dtype))

    def _apply_update(self, optimizer, grads, grad_sums=None) -> None:
        """One optimizer step on the device (slots stay there: see optim.DeviceSlots). As on
        the host, an update that leaves a weight NaN or inf is undone (weights, slots, step
        count) and raises NonFiniteError: one sum of squares over the updated weights, read
        back as one number, tells."""
        eng = self.eng
        dgrads = self._device_grads(grads)
        live = [i for i, g in enumerate(dgrads) if g is not None]
        slots = self.opt_slots
        slots.bind(optimizer)
        kept = {i: self._keep(i, self.params[i]) for i in live}
        kept_slots = {(name, i): self._keep((name, i), a) for name, per in slots.slots.items() for i, a in per.items()}
        iterations = optimizer.iterations
        apply_update(eng, slots, optimizer, self.params, dgrads)
        acc = eng.upload([0.0], "float64")
        for i in live:
            eng.sumsq(acc, self.params[i])
        if np.isfinite(acc.copy_to_host()[0]):
            return
        bad = []
        for i in live:
            one = eng.upload([0.0], "float64")
            eng.sumsq(one, self.params[i])
            if not np.isfinite(one.copy_to_host()[0]):
                bad.append(i)
            eng.assign(self.params[i], kept[i])
        for name, per in slots.slots.items():
            for i in list(per):
                if (name, i) in kept_slots:
                    eng.assign(per[i], kept_slots[name, i])
                else:
                    del per[i]
        optimizer.iterations = iterations
        raise NonFiniteError(f"the update made weights NaN or inf (in {self._weight_names(bad)})")

    def _keep(self, key, a):
        """A copy of device array a in a device array kept under key from step to step."""
        k = self._kept.get(key)
        if k is None or k.shape != a.shape:
            k = self._kept[key] = self.eng.empty(a.shape)
        self.eng.assign(k, a)
        return k

    def _device_grads(self, grads):
        """The device copies when grads are what backward returned, else uploads."""
        if self._grads is not None:
            host, dev = self._grads
            if len(host) == len(grads) and all(a is b for a, b in zip(host, grads)):
                return dev
        return [None if g is None else self.eng.upload(g, self.dtype) for g in grads]

    def sync_optimizer(self) -> None:
        """Copy the optimizer's device slots into its host state (what state_dict() saves)."""
        self.opt_slots.sync()

    # --- stateful layers -----------------------------------------------------------------
    def reset_states(self, states=None) -> None:
        super().reset_states(states)
        self.reset_to = {k: tuple(self.eng.upload(s) for s in v) for k, v in self.reset_to.items()}

    def export_states(self) -> dict:
        """Carried states as host arrays: {"states", "batch", "reset_to"} (for Model.to)."""
        host = lambda d: {k: tuple(s.copy_to_host() for s in v) for k, v in d.items()}  # noqa: E731
        return {"states": host(self.states), "batch": dict(self.state_batch), "reset_to": host(self.reset_to)}

    def import_states(self, d: dict) -> None:
        dev = lambda m: {k: tuple(self.eng.upload(np.asarray(s), self.dtype) for s in v)  # noqa: E731
                         for k, v in m.items()}
        self.states, self.reset_to = dev(d["states"]), dev(d["reset_to"])
        self.state_batch = dict(d["batch"])

    # --- forward and backward ------------------------------------------------------------
    def _upload_input(self, act) -> DAct:
        if isinstance(act, DAct):
            return act
        data = np.ascontiguousarray(act.data)
        mask = None if act.mask is None else self.eng.upload(act.mask)
        return DAct(self.eng.upload(data), mask, act.mask, host=data)

    # Executor.forward runs the graph through these: inputs uploaded, device layers, and the
    # tape's `outputs` host Acts (copied once) while its `values` stay on the device.
    def _new_ctx(self, training: bool, input_grads: bool) -> DeviceCtx:
        return DeviceCtx(training, self.rng, self)

    def _engine_input(self, act):
        return self._upload_input(act)

    def _run_node(self, node, W, ins, ctx, init):
        return forward_node(self, node, W, ins, ctx, init)

    def _output(self, v):
        return self._to_host(v)

    def _to_host(self, v):
        if isinstance(v, DAct):
            return Act(np.ascontiguousarray(v.data.copy_to_host()), v.hmask)
        return tuple(s.copy_to_host() for s in v)

    def take_rows(self, state: tuple, rows: np.ndarray) -> tuple:
        return tuple(self.eng.upload(np.ascontiguousarray(s.copy_to_host()[rows])) for s in state)

    def _add(self, a, b):
        return self.eng.add(a, b)

    def _zeros_like(self, param):
        return self.eng.zeros(param.shape)

    def _to_engine(self, g):
        return self.eng.upload(g, self.dtype)

    def backward(self, tape: Tape, d_outputs):
        """Gradients of the weights (None where not trainable) and of the float inputs, as host
        arrays; the device copies of the weight gradients are kept for apply_update."""
        w_grads, grads = self._walk_tape(tape, d_outputs)
        host = [None if g is None else g.copy_to_host() for g in w_grads]
        self._grads = (host, w_grads)
        in_grads = []
        for nid in self.graph.inputs:
            g = grads.get((nid, "out"))
            in_grads.append(None if g is None else g.copy_to_host())
        return host, in_grads

