"""A compiled single-step path for stateful chains: Model.step without the graph machinery.

Used when the graph is one float input followed by a chain of stateful
simplernn/lstm/gru layers (forward direction, no masks or state edges) and
dense layers. Each layer is one compiled call on preallocated buffers; the
recurrent states live in the executor's state table, so step() and
predict_on_batch() carry the same state.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..kernels.cpu import step as K
from ..kernels.cpu.activations import ACTIVATIONS
from .threads import use_threads

RECURRENT = ("simplernn", "lstm", "gru")


def _supported(node) -> bool:
    o = node.opts
    if node.kind in RECURRENT:
        return (o["stateful"] and not o["go_backwards"] and node.initial_state is None
                and not o["return_state"])
    return node.kind == "dense"


class StepPlan:
    def __init__(self, executor, chain, features):
        self.ex = executor
        self.chain = chain
        self.features = features
        self.buffers: dict = {}

    @classmethod
    def build(cls, executor):
        g = executor.graph
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            return None
        src = g.nodes[g.inputs[0]]
        if src.out.is_tokens or not src.out.seq:
            return None
        chain, prev = [], src.id
        for n in g.nodes:
            if n.kind == "input":
                continue
            if len(n.inputs) != 1 or n.inputs[0].node != prev or n.inputs[0].port != "out" or not _supported(n):
                return None
            chain.append(n)
            prev = n.id
        if g.outputs[0].ref.node != prev or not any(n.kind in RECURRENT for n in chain):
            return None
        use_threads()
        return cls(executor, chain, src.out.features)

    def _buf(self, key, shape, dtype):
        b = self.buffers.get(key)
        if b is None or b.shape != shape:
            b = self.buffers[key] = np.empty(shape, dtype)
        return b

    def __call__(self, x):
        ex = self.ex
        x = np.ascontiguousarray(x, dtype=ex.dtype)
        if x.ndim != 2 or x.shape[1] != self.features:
            raise DataError(f"step() expects one time step of shape (batch, {self.features}), got {x.shape}")
        B = x.shape[0]
        fast = self.buffers.get("fast")
        if fast is not None and fast[0] == B and all(ex.states.get(n.id) is s for n, s in fast[1]):
            for call, args, out in fast[2]:
                call(x, *args)
                x = out
            return x.copy()
        calls, states = [], []
        for node in self.chain:
            W = ex.params[ex.slices[node.id]]
            o = node.opts
            if node.kind == "dense":
                y = self._buf(node.id, (B, W[0].shape[1]), x.dtype)
                b = W[1] if o["use_bias"] else self._zeros(node.id, W[0].shape[1], x.dtype)
                if o["activation"] == "softmax":
                    K.dense_step(x, W[0], b, y, ACTIVATIONS["linear"])
                    e = np.exp(y - y.max(axis=1, keepdims=True))
                    y = e / e.sum(axis=1, keepdims=True)
                else:
                    K.dense_step(x, W[0], b, y, ACTIVATIONS[o["activation"]])
                    calls.append((K.dense_step, (W[0], b, y, ACTIVATIONS[o["activation"]]), y))
                x = y
                continue
            u = o["units"]
            state = ex.stateful_state(node, B)
            if state is None or node.id not in ex.states:
                init = state or tuple(np.zeros((B, u), x.dtype) for _ in node.spec.state_names)
                ex.states[node.id] = tuple(np.array(s, dtype=x.dtype, copy=True) for s in init)
            st = ex.states[node.id]
            G = W[0].shape[1]
            z = self._buf(node.id, (B, G), x.dtype)
            zr = self._buf(("rec", node.id), (B, G), x.dtype)
            bias = W[2] if o["use_bias"] else None
            a = ACTIVATIONS[o["activation"]]
            states.append((node, st))
            if node.kind == "lstm":
                args = (W[0], W[1], bias if bias is not None else self._zeros(node.id, G, x.dtype),
                        st[0], st[1], z, zr, a, ACTIVATIONS[o["recurrent_activation"]])
                K.lstm_step(x, *args)
                calls.append((K.lstm_step, args, st[0]))
            elif node.kind == "simplernn":
                args = (W[0], W[1], bias if bias is not None else self._zeros(node.id, G, x.dtype), st[0], z, zr, a)
                K.simplernn_step(x, *args)
                calls.append((K.simplernn_step, args, st[0]))
            else:
                zeros = self._zeros(node.id, G, x.dtype)
                if bias is None:
                    b_in, b_rec = zeros, zeros
                elif o["reset_after"]:
                    b_in, b_rec = bias[0], bias[1]
                else:
                    b_in, b_rec = bias, zeros
                args = (W[0], W[1], b_in, b_rec, st[0], z, a, ACTIVATIONS[o["recurrent_activation"]],
                        o["reset_after"])
                K.gru_step(x, *args)
                calls.append((K.gru_step, args, st[0]))
            x = st[0]
        # softmax outputs are finished in NumPy, so such a chain is never replayed from the cache
        if len(calls) == len(self.chain):
            self.buffers["fast"] = (B, states, calls)
        return x.copy()

    def _zeros(self, node_id, n, dtype):
        return self.buffers.setdefault(("zeros", node_id, n), np.zeros(n, dtype))
