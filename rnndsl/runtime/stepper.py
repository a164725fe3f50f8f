"""A compiled single-step path for stateful chains: Model.step without the graph machinery.

Used when the graph is one float input followed by a chain of stateful
simplernn/lstm/gru layers (forward direction, no masks or state edges) and
dense layers. Each layer is one compiled call on preallocated buffers; the
recurrent states live in the executor's state table, so step() and
predict_on_batch() carry the same state.

The calls are prepared once (per batch size) and replayed while nothing they hold
went stale: a step checks that the executor's state tuples and weight arrays are
still the objects the calls were prepared with (identity checks: far cheaper than
preparing), and prepares them again otherwise (after reset_states, predict_on_batch, or a
replaced array).

lstm and simplernn take their weights stacked, S = [W; U; b] (see kernels/cpu/step.py).
S is not a copy: the executor's W, U and b become views of S's row blocks, so every
in-place write of the weights (set_weights, an optimizer step) is seen by the next
step with no check at all, and an array replaced outright fails the identity check.
Likewise their states are views of the layer's flat buffer; the executor's state
table holds those views.

A batch-1 step is bound by reading the weights from L2 in the kernel (with the default
activations the product and the gate math are one pass: lstm_fused.lstm_row_step); the
rest is entering the compiled code and Python (where the time goes: bench/README.md,
"Measurements behind the code").
"""

from __future__ import annotations

import numpy as np
from numba import typeof

from ..errors import DataError
from ..kernels.cpu import step as K
from ..kernels.cpu.activations import ACTIVATIONS
from ..kernels.cpu.packed import aligned_empty
from .threads import use_threads

RECURRENT = ("simplernn", "lstm", "gru")
STACKED = ("simplernn", "lstm")
LINEAR = ACTIVATIONS["linear"]


def _supported(node) -> bool:
    o = node.opts
    if node.kind in RECURRENT:
        return (o["stateful"] and not o["go_backwards"] and node.initial_state is None
                and not o["return_state"])
    return node.kind == "dense"


def direct(kernel, args):
    """The kernel's compiled code for these argument types, to call without numba's dispatcher,
    which types every argument on every call (a visible share of a batch-1 step). Only for arguments whose
    types never change: the fast path passes the same buffers every step and an x of fixed
    dtype, shape and C layout (checked), and the unboxing still rejects a wrong dtype or rank."""
    key = (kernel,) + tuple((a.dtype, a.ndim, a.flags.c_contiguous, a.flags.f_contiguous, a.flags.writeable,
                             a.flags.aligned) if isinstance(a, np.ndarray) else type(a) for a in args)
    # memoised: numba's typeof takes microseconds an array, and the calls are prepared
    # again after every reset_states or predict_on_batch
    entry = _ENTRIES.get(key)
    if entry is None:
        try:
            entry = kernel.compile(tuple(typeof(a) for a in args))
        except Exception:  # noqa: BLE001 - NUMBA_DISABLE_JIT, a Python function: the kernel itself
            entry = kernel
        _ENTRIES[key] = entry
    return entry


_ENTRIES: dict = {}


def _dense_softmax(x, W, b, y):
    """y = softmax(x W + b) over the last axis (the kernel's linear part, then NumPy)."""
    K.dense_step(x, W, b, y, LINEAR)
    np.subtract(y, y.max(axis=1, keepdims=True), out=y)
    np.exp(y, out=y)
    y /= y.sum(axis=1, keepdims=True)


class StepPlan:
    def __init__(self, executor, chain, features):
        self.ex = executor
        self.chain = chain
        self.features = features
        self.dtype = executor.dtype
        self.buffers: dict = {}
        # (input shape, ((node id, state tuple), ...), ((param index, array), ...), calls)
        self.fast = None

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

    def step(self, x):
        """The chain's output for one time step x (batch, features); the states move on."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        fast = self.fast
        if fast is None or x.shape != fast[0] or not self._current(fast):
            fast = self._prepare(x)
        for call, args, out in fast[3]:
            call(x, *args)
            x = out
        # a copy: the buffer is overwritten by the next step, the caller may keep this one
        return x.copy()

    def _current(self, fast) -> bool:
        """The executor still holds the state tuples and weight arrays the calls were prepared with."""
        ex = self.ex
        states, params = ex.states, ex.params
        for nid, st in fast[1]:
            if states.get(nid) is not st:
                return False
        for i, p in fast[2]:
            if params[i] is not p:
                return False
        return True

    __call__ = step     # plan.step(x) is the cheaper call (no __call__ slot lookup)

    # --- preparing the calls ----------------------------------------------------------------
    def _buf(self, key, shape, dtype):
        b = self.buffers.get(key)
        if b is None or b.shape != shape:
            b = self.buffers[key] = aligned_empty(shape, dtype)
        return b

    def _zeros(self, node_id, n, dtype):
        return self.buffers.setdefault(("zeros", node_id, n), np.zeros(n, dtype))

    def _stacked(self, node, F, u, bias):
        """S = [W; U; b] (b only with a bias), the executor's arrays becoming views of it."""
        ex = self.ex
        idx = range(ex.slices[node.id].start, ex.slices[node.id].start + (3 if bias else 2))
        known = self.buffers.get(("stacked", node.id))
        if known is not None and all(ex.params[i] is v for i, v in zip(idx, known[1])):
            return known[0]
        W = ex.params[idx[0]]
        S = aligned_empty((F + u + (1 if bias else 0), W.shape[1]), ex.dtype)
        views = (S[:F], S[F:F + u]) + ((S[F + u],) if bias else ())
        with ex.writing_weights():      # the executor's arrays are replaced (by views of equal values)
            for i, v in zip(idx, views):
                v[...] = ex.params[i]
                ex.params[i] = v
        self.buffers[("stacked", node.id)] = (S, views)
        return S

    def _initial_state(self, node, B, u, dtype):
        """The layer's current state (carried, reset_states' value, or zeros) as arrays."""
        state = self.ex.stateful_state(node, B)
        if state is None:
            return tuple(np.zeros((B, u), dtype) for _ in node.spec.state_names)
        return state

    def _prepare(self, x):
        """The compiled calls for this batch size on the current states and weights."""
        ex = self.ex
        if x.ndim != 2 or x.shape[1] != self.features:
            raise DataError(f"step() expects one time step of shape (batch, {self.features}), got {x.shape}")
        B, dt = x.shape[0], x.dtype
        F = self.features
        calls, states, used = [], [], []
        for node in self.chain:
            sl = ex.slices[node.id]
            o = node.opts
            if node.kind == "dense":
                W = ex.params[sl]
                y = self._buf(node.id, (B, W[0].shape[1]), dt)
                b = W[1] if o["use_bias"] else self._zeros(node.id, W[0].shape[1], dt)
                if o["activation"] == "softmax":
                    calls.append((_dense_softmax, (W[0], b, y), y))
                else:
                    calls.append((K.dense_step, (W[0], b, y, ACTIVATIONS[o["activation"]]), y))
                used += range(sl.start, sl.stop)
                F = y.shape[1]
                continue
            u = o["units"]
            init = self._initial_state(node, B, u, dt)
            a = ACTIVATIONS[o["activation"]]
            if node.kind in STACKED:
                S = self._stacked(node, F, u, o["use_bias"])
                n_states = len(node.spec.state_names)
                # z (B, G), xh (B, K), then the states: z and S start at cache lines
                buf = self._buf(node.id, (B * (S.shape[1] + S.shape[0] + n_states * u),), dt)
                off = B * (S.shape[1] + S.shape[0])
                st = tuple(buf[off + k * B * u:off + (k + 1) * B * u].reshape(B, u) for k in range(n_states))
                if node.kind == "lstm":
                    args = (S, buf, a, ACTIVATIONS[o["recurrent_activation"]])
                    calls.append((K.lstm_step, args, st[0]))
                else:
                    calls.append((K.simplernn_step, (S, buf, a), st[0]))
            else:
                W = ex.params[sl]
                G = W[0].shape[1]
                st = tuple(np.empty((B, u), dt) for _ in node.spec.state_names)
                z = self._buf(node.id, (B, G), dt)
                zeros = self._zeros(node.id, G, dt)
                if not o["use_bias"]:
                    b_in, b_rec = zeros, zeros
                elif o["reset_after"]:
                    b_in, b_rec = W[2][0], W[2][1]
                else:
                    b_in, b_rec = W[2], zeros
                args = (W[0], W[1], b_in, b_rec, st[0], z, a, ACTIVATIONS[o["recurrent_activation"]],
                        o["reset_after"])
                calls.append((K.gru_step, args, st[0]))
            for s, v in zip(st, init):
                s[...] = v
            ex.states[node.id] = st
            states.append((node.id, st))
            used += range(sl.start, sl.stop)
            F = u
        h = np.empty(x.shape, dt)
        for k, (call, args, out) in enumerate(calls):
            calls[k] = (direct(call, (h, *args)), args, out)
            h = out
        self.fast = (x.shape, tuple(states), tuple((i, ex.params[i]) for i in used), tuple(calls))
        return self.fast
