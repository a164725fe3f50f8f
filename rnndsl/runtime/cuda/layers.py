"""The non-recurrent layers on the device: embed, dense, batchnorm, dropout, repeat, concat, add
(attention in attention.py).

Each function mirrors the layer's CPU runner (runtime/cpu/*.py; the math is in the
layer kinds' docstrings, layers/*.py) and returns ``(outputs, backprop)`` the same
way, with device arrays (DAct) in place of NumPy arrays. `forward_node` finds the
function for a node in FORWARD, by the node's layer kind.
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError, DeviceError
from ...kernels.cpu.activations import activation_code
from ..merge import combine_masks, same_steps
from .attention import attention_forward
from .device import DAct
from .recurrent import bidirectional_forward, recurrent_forward


def _merged_mask(eng, ins):
    """The merged mask as on the CPU (combine_masks), from the small host copies, uploaded."""
    h = combine_masks([a.hmask for a in ins])
    if h is None:
        return None, None
    return (ins[0].mask, h) if len(ins) == 1 else (eng.upload(h), h)


def embed_forward(ex, node, W, ins, ctx, init_state=None):
    eng = ex.eng
    ids = ins[0].data                                        # (T, B) token ids on the device
    T, B = ids.shape
    E = W[0]
    D = E.shape[1]
    Y = eng.empty((T, B, D))
    flat_ids = eng.flat(ids)
    eng.run(eng.k.gather_rows, T * B * D, eng.rows(Y), E, flat_ids)
    mask = hmask = None
    if node.opts["mask_zero"]:
        hmask = (ins[0].host != 0).astype(np.uint8)
        mask = eng.upload(hmask)

    def backprop(d):
        if not node.opts["trainable"]:
            return [None], [None], None
        dE = eng.zeros(E.shape)
        eng.run(eng.k.scatter_add_rows, T * B * D, dE, eng.rows(d["out"]), flat_ids)
        return [None], [dE], None

    return {"out": DAct(Y, mask, hmask)}, backprop


def dense_forward(ex, node, W, ins, ctx, init_state=None):
    eng = ex.eng
    x = ins[0]
    kernel = W[0]
    bias = W[1] if node.opts["use_bias"] else None
    X = eng.rows(x.data)
    units = kernel.shape[1]
    Z = eng.empty((X.shape[0], units))
    eng.gemm(X, kernel, Z, bias=bias)                        # (rows, in) @ (in, units) + b
    act = node.opts["activation"]
    if act == "softmax":
        eng.run(eng.k.softmax_rows, Z.shape[0], Z)
    elif act != "linear":
        eng.run(eng.k.act_inplace, Z.size, eng.flat(Z), activation_code(act))
    Y = Z                                                    # activated in place
    shape = x.data.shape[:-1] + (units,)

    def backprop(d):
        dY = eng.rows(d["out"])
        if act == "linear":
            dZ = dY
        elif act == "softmax":
            dZ = eng.empty(Y.shape)
            eng.run(eng.k.softmax_back_rows, Y.shape[0], dZ, Y, dY)
        else:
            dZ = eng.empty(Y.shape)
            eng.run(eng.k.act_back, Y.size, eng.flat(dZ), eng.flat(Y), eng.flat(dY), activation_code(act))
        dK = eng.gemm(X, dZ, eng.empty(kernel.shape), ta=True)          # undo Z = X @ kernel
        dX = eng.empty(x.data.shape)
        eng.gemm(dZ, kernel, eng.rows(dX), tb=True)
        grads = [dK]
        if bias is not None:
            grads.append(eng.colsum(eng.empty(bias.shape), dZ))
        return [dX], grads, None

    return {"out": DAct(Y.reshape(*shape), x.mask, x.hmask)}, backprop


class _Assign:
    """`arr[...] = new` on a device array: the train loop applies batchnorm's deferred
    moving-statistics updates that way."""

    def __init__(self, eng, arr):
        self.eng, self.arr = eng, arr

    def __setitem__(self, key, value):
        self.eng.assign(self.arr, value)


def batchnorm_forward(ex, node, W, ins, ctx, init_state=None):
    eng = ex.eng
    x = ins[0]
    o = node.opts
    gamma, beta, moving_mean, moving_var = node.spec.named_weights(o, W)
    X = eng.rows(x.data)
    R, C = X.shape
    eps = o["epsilon"]
    Xc = eng.empty(X.shape)
    w = None
    if ctx.training:
        # batch statistics over every unmasked row (batch and, for sequences, steps)
        if x.hmask is not None:
            hw = x.hmask.reshape(-1).astype(eng.dtype)
            w = eng.upload(hw)
            n = max(hw.sum(), 1.0)
        else:
            n = max(eng.dtype.type(R), 1.0)
        mean = eng.colsum(eng.empty(C), X, w=w, divisor=n)
        eng.run(eng.k.sub_cols, R * C, eng.flat(Xc), eng.flat(X), mean)
        var = eng.colsum(eng.empty(C), Xc, Xc, w=w, divisor=n)
        m = o["momentum"]
        for arr, stat in ((moving_mean, mean), (moving_var, var)):
            new = eng.empty(C)
            eng.run(eng.k.lerp, C, new, arr, stat, eng.ty(m), eng.ty(1 - m))
            ctx.updates.append((_Assign(eng, arr), new))
    else:
        mean, var = moving_mean, moving_var
        eng.run(eng.k.sub_cols, R * C, eng.flat(Xc), eng.flat(X), mean)
    inv = eng.empty(C)
    eng.run(eng.k.inv_std, C, inv, var, eng.ty(eps))
    Xhat, Y = eng.empty(X.shape), eng.empty(X.shape)
    eng.run(eng.k.bn_apply, R * C, eng.flat(Xhat), eng.flat(Y), eng.flat(Xc), inv,
            eng.none if gamma is None else gamma, eng.none if beta is None else beta)

    def backprop(d):
        dY = eng.rows(d["out"])
        if gamma is not None:                                  # undo Y = gamma * Xhat + beta
            dXhat = eng.empty(X.shape)
            eng.run(eng.k.mul_cols, R * C, eng.flat(dXhat), eng.flat(dY), gamma)
        else:
            dXhat = dY
        grads = []
        if gamma is not None:
            grads.append(eng.colsum(eng.empty(C), dY, Xhat))
        if beta is not None:
            grads.append(eng.colsum(eng.empty(C), dY))
        grads += [None, None]                                  # moving statistics: not trained
        dX = eng.empty(x.data.shape)
        if not ctx.training:                                   # inference: statistics are constants
            eng.run(eng.k.mul_cols, R * C, eng.flat(dX), eng.flat(dXhat), inv)
            return [dX], grads, None
        # undo Xhat = (X - mean) * inv_std with mean and var taken over the weighted rows
        s_xc = eng.colsum(eng.empty(C), dXhat, Xc)
        s_dxh = eng.colsum(eng.empty(C), dXhat)
        dvar, dmean = eng.empty(C), eng.empty(C)
        eng.run(eng.k.bn_stat_grads, C, dvar, dmean, s_xc, s_dxh, inv)
        eng.run(eng.k.bn_back, R * C, eng.flat(dX), eng.flat(dXhat), eng.flat(Xc), inv,
                eng.none if w is None else w, eng.ty(1.0 / n), dvar, dmean)
        return [dX], grads, None

    return {"out": DAct(Y.reshape(*x.data.shape), x.mask, x.hmask)}, backprop


def dropout_forward(ex, node, W, ins, ctx, init_state=None):
    eng = ex.eng
    x = ins[0]
    rate = node.opts["rate"]
    if not ctx.training or rate == 0.0:
        return {"out": x}, lambda d: ([d["out"]], [], None)
    # drawn on the host with the CPU engine's generator and shape (time-major), copied once
    keep = eng.upload((ctx.rng.random(x.data.shape) >= rate).astype(eng.dtype) / (1.0 - rate))
    return {"out": DAct(eng.mul(x.data, keep), x.mask, x.hmask)}, lambda d: ([eng.mul(d["out"], keep)], [], None)


def masking_forward(ex, node, W, ins, ctx, init_state=None):
    """As on the CPU (runtime/cpu/masking.py): the mask of the steps not all mask_value, on
    the device and as the small host copy the layers after it read; y = x * m."""
    eng = ex.eng
    X = ins[0].data                                          # (T, B, F)
    T, B, F = X.shape
    mask = eng.empty((T, B), np.uint8)
    eng.run(eng.k.mask_steps, T * B, eng.flat(mask), eng.flat(X), eng.ty(node.opts["mask_value"]), F)
    Y = eng.empty(X.shape)
    eng.run(eng.k.keep_rows, Y.size, eng.flat(Y), eng.flat(X), eng.flat(mask), F)

    def backprop(d):                                         # dx = dy * m
        dX = eng.empty(X.shape)
        eng.run(eng.k.keep_rows, dX.size, eng.flat(dX), eng.flat(d["out"]), eng.flat(mask), F)
        return [dX], [], None

    return {"out": DAct(Y, mask, mask.copy_to_host())}, backprop


def avg_pool_forward(ex, node, W, ins, ctx, init_state=None):
    """As on the CPU (runtime/cpu/pooling.py): the mean over the real steps."""
    eng = ex.eng
    x = ins[0]
    T, B, F = x.data.shape
    w = eng.flat(eng.nomask if x.mask is None else x.mask)
    Y = eng.empty((B, F))
    eng.run(eng.k.avg_steps, B * F, eng.flat(Y), eng.flat(x.data), w, T, F)

    def backprop(d):
        dX = eng.empty((T, B, F))
        eng.run(eng.k.avg_steps_back, B * F, eng.flat(dX), eng.flat(d["out"]), w, T, F)
        return [dX], [], None

    return {"out": DAct(Y)}, backprop


def max_pool_forward(ex, node, W, ins, ctx, init_state=None):
    """As on the CPU: the max over the steps, its gradient to the first step holding it."""
    eng = ex.eng
    X = ins[0].data
    T, B, F = X.shape
    if T == 0:
        raise DataError(f"layer {node.name!r}: global_max_pool over a sequence of zero steps has no maximum")
    Y, at = eng.empty((B, F)), eng.empty((B, F), np.int32)
    eng.run(eng.k.max_steps, B * F, eng.flat(Y), eng.flat(at), eng.flat(X), T)

    def backprop(d):
        dX = eng.empty((T, B, F))
        eng.run(eng.k.max_steps_back, B * F, eng.flat(dX), eng.flat(d["out"]), eng.flat(at), T)
        return [dX], [], None

    return {"out": DAct(Y)}, backprop


def flatten_forward(ex, node, W, ins, ctx, init_state=None):
    """As on the CPU: (T, B, F) time-major -> (B, T F)."""
    eng = ex.eng
    X = ins[0].data
    T, B, F = X.shape
    Y = eng.empty((B, T * F))
    eng.run(eng.k.steps_to_rows, Y.size, eng.flat(Y), eng.flat(X), T, B, F)

    def backprop(d):
        dX = eng.empty((T, B, F))
        eng.run(eng.k.rows_to_steps, dX.size, eng.flat(dX), eng.flat(d["out"]), T, B, F)
        return [dX], [], None

    return {"out": DAct(Y)}, backprop


def state_part_forward(ex, node, W, ins, ctx, init_state=None):
    """As on the CPU (runtime/cpu/state.py): part k of a state as a vector."""
    eng = ex.eng
    state, k = ins[0], node.opts["part"]

    def backprop(d):
        return [tuple(d["out"] if j == k else eng.zeros(s.shape) for j, s in enumerate(state))], [], None

    return {"out": DAct(state[k])}, backprop


def state_pack_forward(ex, node, W, ins, ctx, init_state=None):
    """As on the CPU: vectors as a state."""
    return {"state": tuple(a.data for a in ins)}, lambda d: (list(d["state"]), [], None)


def repeat_forward(ex, node, W, ins, ctx, init_state=None):
    eng = ex.eng
    x = ins[0].data                                          # (B, F)
    n = node.opts["n"]
    y = eng.empty((n,) + x.shape)
    eng.run(eng.k.repeat, y.size, eng.flat(y), eng.flat(x))

    def backprop(d):                                         # undo the copies: sum them
        dx = eng.empty(x.shape)
        eng.run(eng.k.sum_copies, dx.size, eng.flat(dx), eng.flat(d["out"]), n)
        return [dx], [], None

    return {"out": DAct(y)}, backprop


def concat_forward(ex, node, W, ins, ctx, init_state=None):
    same_steps(node, ins)
    eng = ex.eng
    widths = [a.data.shape[a.data.ndim - 1] for a in ins]
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).tolist()
    y = eng.empty(ins[0].data.shape[:-1] + (sum(widths),))
    for a, off in zip(ins, offsets):
        eng.run(eng.k.put_cols, a.data.size, eng.rows(y), eng.rows(a.data), off)
    mask, hmask = _merged_mask(eng, ins)

    def backprop(d):
        parts = []
        for a, off in zip(ins, offsets):
            part = eng.empty(a.data.shape)
            eng.run(eng.k.take_cols, part.size, eng.rows(part), eng.rows(d["out"]), off)
            parts.append(part)
        return parts, [], None

    return {"out": DAct(y, mask, hmask)}, backprop


def add_forward(ex, node, W, ins, ctx, init_state=None):
    same_steps(node, ins)
    eng = ex.eng
    y = ins[0].data
    for a in ins[1:]:
        y = eng.add(y, a.data)
    mask, hmask = _merged_mask(eng, ins)
    return {"out": DAct(y, mask, hmask)}, lambda d: ([d["out"]] * len(ins), [], None)


def _cell_unsupported(node):
    """Why rnn(cell(...)) (or bidirectional(rnn(...))) cannot run on the device, or None."""
    from ...cells.cuda_codegen import unsupported
    cell = node.opts.get("cell")
    return "no cell" if cell is None else unsupported(cell)


def _rnn(node):
    if _cell_unsupported(node) is not None:
        return None
    from .cells import rnn_forward
    return rnn_forward


def _bidirectional(node):
    for half in (node.spec.inner(node), node.spec.backward(node)):
        if half is None or half.kind not in RECURRENT or (half.kind == "rnn" and _cell_unsupported(half)):
            return None
    return bidirectional_forward


def _always(fn):
    return lambda node: fn


RECURRENT = ("simplernn", "lstm", "gru", "rnn")      # the recurrent kinds with CUDA kernels (also wrapped)
BIDIRECTIONAL = ("bidirectional", "bilstm", "bigru", "birnn")
# layer kind -> (node -> its device forward, or None when this node cannot run on the device)
FORWARD = {
    "embed": _always(embed_forward),
    "dense": _always(dense_forward),
    "batchnorm": _always(batchnorm_forward),
    "dropout": _always(dropout_forward),
    "masking": _always(masking_forward),
    "global_avg_pool": _always(avg_pool_forward),
    "global_max_pool": _always(max_pool_forward),
    "flatten": _always(flatten_forward),
    "state_part": _always(state_part_forward),
    "state_pack": _always(state_pack_forward),
    "repeat": _always(repeat_forward),
    "concat": _always(concat_forward),
    "add": _always(add_forward),
    "attention": _always(attention_forward),
    "additive_attention": _always(attention_forward),
    "simplernn": _always(recurrent_forward),
    "lstm": _always(recurrent_forward),
    "gru": _always(recurrent_forward),
    "rnn": _rnn,
    **dict.fromkeys(BIDIRECTIONAL, _bidirectional),
}


def _forward_fn(node):
    choose = FORWARD.get(node.kind)
    return None if choose is None else choose(node)


def _why(node) -> str:
    """What a custom cell uses that has no CUDA kernels, for the error message."""
    layers = (node.spec.inner(node), node.spec.backward(node)) if node.kind in BIDIRECTIONAL else (node,)
    for layer in layers:
        why = _cell_unsupported(layer) if layer is not None and layer.kind == "rnn" else None
        if why:
            return f": {why}"
    return ""


def check_supported(graph) -> None:
    """DeviceError naming the layers the CUDA engine cannot run (checked when it is created)."""
    missing = [f"{n.name} ({n.spec.display_name(n)}{_why(n)})" for n in graph.nodes
               if n.kind != "input" and _forward_fn(n) is None]
    if missing:
        raise DeviceError(f"no CUDA implementation for layer{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)}; use device='cpu'")


def forward_node(ex, node, W, ins, ctx, init_state=None):
    fn = _forward_fn(node)
    if fn is None:
        check_supported(ex.graph)
    return fn(ex, node, W, ins, ctx, init_state)
