"""A model as an ONNX graph, for inference (dropout off, batch norm on its moving statistics).

Inputs and outputs are batch-major as Model.predict's, with a symbolic batch and number of
steps (`batch`, `steps_<input>`): sequences (batch, steps, features) float32, token ids
(batch, steps) int64, vectors (batch, features). Inside, sequences are time-major (T, B, F),
as ONNX's recurrent operators want them (layout 0; onnxruntime runs no layout 1).

    embed            Gather(E, ids); mask_zero: the mask ids != 0
    dense            MatMul, Add, the activation (softmax over the last axis)
    batchnorm        x * s + t, s = gamma / sqrt(var + eps), t = beta - mean * s
    dropout          nothing
    masking          m = any_f(x != mask_value), y = x * m
    lstm, gru, simplernn, bidirectional
                     ONNX's LSTM / GRU / RNN operator where it computes the layer: no mask
                     on the input, activations tanh, sigmoid or relu. Gate blocks: Keras's
                     LSTM (i, f, c, o) -> ONNX's (i, o, f, c); GRU (z, r, h) is ONNX's order,
                     reset_after=true is linear_before_reset=1; B = [input bias, recurrent
                     bias]. go_backwards is direction="reverse", its sequence put back in
                     processing order (as rnndsl and Keras return it).
                     Else (a mask, hard_sigmoid or linear) a Scan over the steps whose body
                     is the cell's math (rnndsl/layers/<kind>.py): a masked step keeps the
                     state and outputs the previous h (zeros with zero_output_for_mask).
    rnn(cell)        a Scan whose body is the cell's equations (its expression graph)
    concat, add      Concat, Sum; masks OR-ed (none when an input has none)
    attention, additive_attention
                     MatMul (dot) or Tanh of q_i + k_j summed (concat, additive), the masked
                     scores pushed down by 1e9 (Where), Softmax, MatMul with the value
    repeat           Expand
    global_avg_pool  masked mean over the steps; global_max_pool ReduceMax; flatten Reshape
    state parts      initial_state edges and `.state` outputs as (B, units) tensors

A stateful layer starts from zeros (the graph keeps no state between runs: it computes
what predict computes after reset_states()). A layer kind with no mapping is refused by name. Weights are stored as float32 whatever the model's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RnnError

OPSET = 17
NATIVE_ACT = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}
RECURRENT = ("lstm", "gru", "simplernn")
LSTM_TO_ONNX = (0, 3, 1, 2)          # Keras's blocks i, f, c, o in ONNX's order i, o, f, c


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise RnnError('ONNX export needs the onnx package: pip install "rnndsl[onnx]"') from None
    return onnx, helper, numpy_helper


@dataclass
class Val:
    """A tensor of the ONNX graph: seq (T, B, F) float, tok (T, B) int64 or vec (B, F); mask
    is a (T, B) bool tensor's name, or None."""

    name: str
    kind: str
    mask: str | None = None


class _Graph:
    """Nodes and initializers being built, with unique names."""

    def __init__(self, helper, numpy_helper, prefix=""):
        self.h, self.nh = helper, numpy_helper
        self.nodes, self.inits = [], []
        self.prefix = prefix
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, value, hint="c") -> str:
        a = np.asarray(value)
        a = a.astype(np.int64) if a.dtype.kind in "iub" else a.astype(np.float32)
        name = self.fresh(hint)
        self.inits.append(self.nh.from_array(np.array(a, order="C"), name))
        return name

    def op(self, op_type, inputs, n_out=1, hint=None, **attrs):
        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    # small helpers
    def unsqueeze(self, x, axis: int):
        return self.op("Unsqueeze", [x, self.const([axis], "axes")])

    def squeeze(self, x, axis: int):
        return self.op("Squeeze", [x, self.const([axis], "axes")])

    def reverse_time(self, x):
        """x[::-1] along the first axis, whatever its length."""
        return self.op("Slice", [x, self.const([-1]), self.const([np.iinfo(np.int64).min]), self.const([0]),
                                 self.const([-1])], hint="reversed")

    def last_step(self, x):
        return self.op("Gather", [x, self.const(np.int64(-1), "last")], axis=0)

    def activation(self, x, name: str):
        if name == "linear":
            return x
        if name == "softmax":
            return self.op("Softmax", [x], axis=-1)
        if name == "hard_sigmoid":
            return self.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
        return self.op(NATIVE_ACT[name], [x])

    def zeros_like_rows(self, x, width: int, batch_axis: int):
        """zeros (B, width), B being x's size along batch_axis."""
        b = self.op("Gather", [self.op("Shape", [x]), self.const([batch_axis])], axis=0)
        shape = self.op("Concat", [b, self.const([width])], axis=0)
        return self.op("ConstantOfShape", [shape], value=self.nh.from_array(np.zeros(1, np.float32)))


def _refuse(node, why: str):
    raise RnnError(f"layer {node.name!r} ({node.kind}) cannot be exported to ONNX: {why}")


# --- recurrent layers ---------------------------------------------------------------------------

def _native(kind, opts, mask) -> bool:
    if kind not in RECURRENT:
        return False
    acts = [opts["activation"]] + ([opts["recurrent_activation"]] if kind != "simplernn" else [])
    return mask is None and all(a in NATIVE_ACT for a in acts)


def _run_cell(g, kind, opts, W, x, mask, init, backwards: bool, zero_out: bool, width=None):
    """One recurrent layer over x (T, B, F): (its outputs (T, B, u) in processing order, the
    last of them, the final state parts)."""
    if kind == "rnn":
        return _custom_cell(g, opts, W, [x], [width], mask, init, backwards, zero_out)
    if _native(kind, opts, mask):
        return _native_cell(g, kind, opts, W, x, init, backwards)
    return _scan_cell(g, kind, opts, W, x, mask, init, backwards, zero_out)


def _native_weights(kind, opts, W):
    """(operator, its W (G*u, F), R (G*u, u), B (2*G*u,) or None, activations, attributes)
    for one direction of ONNX's LSTM, GRU or RNN from the layer's Keras-layout weights."""
    u = opts["units"]
    kernel, rec = W[0], W[1]
    bias = W[2] if opts["use_bias"] else None
    ra, act = opts.get("recurrent_activation"), opts["activation"]
    attrs = {}
    if kind == "lstm":
        def order(a):
            return np.concatenate([a[..., k * u:(k + 1) * u] for k in LSTM_TO_ONNX], axis=-1)
        kernel, rec = order(kernel), order(rec)
        B = None if bias is None else np.concatenate([order(bias), np.zeros(4 * u)])
        return "LSTM", kernel.T, rec.T, B, [NATIVE_ACT[ra], NATIVE_ACT[act], NATIVE_ACT[act]], attrs
    if kind == "gru":
        if bias is None:
            B = None
        elif opts["reset_after"]:
            B = np.concatenate([bias[0], bias[1]])
        else:
            B = np.concatenate([bias, np.zeros(3 * u)])
        attrs["linear_before_reset"] = int(opts["reset_after"])
        return "GRU", kernel.T, rec.T, B, [NATIVE_ACT[ra], NATIVE_ACT[act]], attrs
    B = None if bias is None else np.concatenate([bias, np.zeros(u)])
    return "RNN", kernel.T, rec.T, B, [NATIVE_ACT[act]], attrs


def _native_op(g, kind, opts, Ws, x, inits, direction):
    """ONNX's operator over x with one set of weights per direction (Ws) and initial states
    (inits: per direction, a list of (B, u) parts, or None): (Y (T, D, B, u), final parts
    each (D, B, u))."""
    parts = [_native_weights(kind, opts, W) for W in Ws]
    op, _, _, B, acts, attrs = parts[0]
    n_states = 2 if op == "LSTM" else 1
    inputs = [x, g.const(np.stack([p[1] for p in parts]), "W"), g.const(np.stack([p[2] for p in parts]), "R"),
              "" if B is None else g.const(np.stack([p[3] for p in parts]), "B"), ""]
    if inits[0] is not None:
        for k in range(n_states):
            per_dir = [g.unsqueeze(init[k], 0) for init in inits]
            inputs.append(per_dir[0] if len(per_dir) == 1 else g.op("Concat", per_dir, axis=0))
    while inputs[-1] == "":
        inputs.pop()
    outs = g.op(op, inputs, n_out=1 + n_states, hint=op.lower(), hidden_size=opts["units"], direction=direction,
                activations=acts * len(Ws), **attrs)
    return outs[0], outs[1:]


def _native_cell(g, kind, opts, W, x, init, backwards):
    Y, finals = _native_op(g, kind, opts, [W], x, [init], "reverse" if backwards else "forward")
    seq = g.squeeze(Y, 1)                           # (T, 1, B, u) -> (T, B, u), in time order
    if backwards:
        seq = g.reverse_time(seq)
    finals = [g.squeeze(s, 0) for s in finals]
    return seq, finals[0], finals


def _scan(g, names, u, init, x_for_batch, scans, mask, backwards, zero_out, step):
    """A Scan over the steps of `scans` ((name, width) pairs, time-major) that carries the
    state parts `names` (each (B, u), from init or zeros); step(body, previous parts, inputs
    at t) gives the new parts in the body. A masked step keeps the state and outputs the
    previous h (zeros with zero_out). (the outputs (T, B, u) in processing order, the last of
    them, the final parts)."""
    h, nh = g.h, g.nh
    if init is None:
        init = [g.zeros_like_rows(x_for_batch, u, 1) for _ in names]
    b = _Graph(h, nh, prefix=g.fresh("body") + "_")
    s_in = [b.fresh(n) for n in names]
    x_in = [b.fresh("x_t") for _ in scans]
    mt = b.fresh("m_t") if mask is not None else None
    new = step(b, s_in, x_in)
    hn, hp = new[0], s_in[0]
    if mt is not None:
        new = [b.op("Where", [mt, n, p]) for n, p in zip(new, s_in)]
        y = b.op("Where", [mt, hn, g.const(np.float32(0)) if zero_out else hp])
    else:
        y = b.op("Identity", [new[0]])
    new = [b.op("Identity", [n]) for n in new]          # a body's outputs are its own names
    f32 = 1  # TensorProto.FLOAT
    body_inputs = [h.make_tensor_value_info(n, f32, [None, u]) for n in s_in]
    body_inputs += [h.make_tensor_value_info(n, f32, [None, width]) for n, (_, width) in zip(x_in, scans)]
    if mt is not None:
        body_inputs.append(h.make_tensor_value_info(mt, 9, [None, 1]))      # BOOL
    body_outputs = [h.make_tensor_value_info(n, f32, [None, u]) for n in new + [y]]
    body = h.make_graph(b.nodes, g.fresh("cell"), body_inputs, body_outputs, initializer=b.inits)
    inputs = [name for name, _ in scans] + ([g.unsqueeze(mask, 2)] if mask is not None else [])
    outs = g.op("Scan", list(init) + inputs, n_out=len(names) + 1, hint="scan", body=body,
                num_scan_inputs=len(inputs), scan_input_directions=[1 if backwards else 0] * len(inputs))
    seq = outs[-1]                                   # in processing order
    return seq, g.last_step(seq), outs[:-1]


def _scan_cell(g, kind, opts, W, x, mask, init, backwards, zero_out):
    """A built-in cell's step as a Scan; xW + b is one product before it."""
    u = opts["units"]
    act, ra = opts["activation"], opts.get("recurrent_activation")
    kernel, rec = W[0], W[1]
    bias = W[2] if opts["use_bias"] else None
    b_in = b_rec = None
    if bias is not None:
        b_in, b_rec = (bias[0], bias[1]) if (kind == "gru" and opts["reset_after"]) else (bias, None)
    xp = g.op("MatMul", [x, g.const(kernel, "kernel")])
    if b_in is not None:
        xp = g.op("Add", [xp, g.const(b_in, "bias")])

    def step(b, s_in, x_in):
        hp, xt = s_in[0], x_in[0]
        if kind == "lstm":
            z = b.op("Add", [xt, b.op("MatMul", [hp, g.const(rec, "U")])])
            zi, zf, zc, zo = b.op("Split", [z], n_out=4, axis=1)
            c = b.op("Add", [b.op("Mul", [b.activation(zf, ra), s_in[1]]),
                             b.op("Mul", [b.activation(zi, ra), b.activation(zc, act)])])
            return [b.op("Mul", [b.activation(zo, ra), b.activation(c, act)]), c]
        if kind == "gru":
            xz, xr, xh = b.op("Split", [xt], n_out=3, axis=1)
            if opts["reset_after"]:
                hu = b.op("MatMul", [hp, g.const(rec, "U")])
                if b_rec is not None:
                    hu = b.op("Add", [hu, g.const(b_rec, "rbias")])
                hz, hr, hh = b.op("Split", [hu], n_out=3, axis=1)
                z = b.activation(b.op("Add", [xz, hz]), ra)
                r = b.activation(b.op("Add", [xr, hr]), ra)
                cand = b.activation(b.op("Add", [xh, b.op("Mul", [r, hh])]), act)
            else:
                hz, hr = b.op("Split", [b.op("MatMul", [hp, g.const(rec[:, :2 * u], "U_zr")])], n_out=2, axis=1)
                z = b.activation(b.op("Add", [xz, hz]), ra)
                r = b.activation(b.op("Add", [xr, hr]), ra)
                cand = b.activation(b.op("Add", [xh, b.op("MatMul", [b.op("Mul", [r, hp]),
                                                                     g.const(rec[:, 2 * u:], "U_h")])]), act)
            # h = z h_prev + (1 - z) hh
            return [b.op("Add", [b.op("Mul", [z, hp]), b.op("Mul", [b.op("Sub", [g.const(np.float32(1)), z]),
                                                                   cand])])]
        return [b.activation(b.op("Add", [xt, b.op("MatMul", [hp, g.const(rec, "U")])]), act)]

    names = ("h", "c") if kind == "lstm" else ("h",)
    return _scan(g, names, u, init, x, [(xp, xp_width(kind, u))], mask, backwards, zero_out, step)


def _custom_cell(g, opts, W, xs, widths, mask, init, backwards, zero_out):
    """A cell declared in the spec (rnndsl/layers/cells): its step's expression graph, node
    by node, as the Scan's body."""
    cell = opts["cell"]
    u = opts["units"]
    if cell.output is not None:
        raise RnnError(f"cell {cell.name!r}: a cell with its own output (`output = ...`) cannot be exported to "
                       "ONNX yet")

    def step(b, s_in, x_in):
        val: dict = {}
        for n in cell.graph.live(cell.new):
            if n.op == "const":
                val[n.id] = g.const(np.float32(n.attr))
            elif n.op == "input":
                val[n.id] = x_in[n.attr]
            elif n.op == "prev":
                val[n.id] = s_in[n.attr]
            elif n.op == "vec":
                val[n.id] = g.const(W[n.attr], cell.weights[n.attr].name)
            elif n.op == "matmul":
                val[n.id] = b.op("MatMul", [val[n.args[0].id], g.const(W[n.attr], cell.weights[n.attr].name)])
            elif n.op in ("add", "sub", "mul", "div"):
                val[n.id] = b.op(n.op.capitalize(), [val[a.id] for a in n.args])
            elif n.op == "neg":
                val[n.id] = b.op("Neg", [val[n.args[0].id]])
            elif n.op == "func":
                a = val[n.args[0].id]
                if n.attr == "rsqrt":
                    val[n.id] = b.op("Reciprocal", [b.op("Sqrt", [a])])
                elif n.attr in CELL_FUNCS:
                    val[n.id] = b.op(CELL_FUNCS[n.attr], [a])
                else:
                    val[n.id] = b.activation(a, n.attr)
            elif n.op == "reduce":              # over the units (or features): one value per row, (B, 1)
                val[n.id] = _reduce(b, g, n.attr, val[n.args[0].id])
            elif n.op == "new":
                val[n.id] = val[n.args[0].id]
            else:                                   # pragma: no cover - expr.py's ops are all above
                raise RnnError(f"cell {cell.name!r}: no ONNX operator for {n.op!r}")
        # a part that only broadcasts (a number, a weight vector) becomes (B, u)
        zero = b.op("Mul", [s_in[0], g.const(np.float32(0))])
        return [b.op("Add", [val[k.id], zero]) if not k.batched else val[k.id] for k in cell.new]

    return _scan(g, cell.states, u, init, xs[0], list(zip(xs, widths)), mask, backwards, zero_out, step)


CELL_FUNCS = {"exp": "Exp", "sqrt": "Sqrt", "log": "Log", "abs": "Abs", "softplus": "Softplus"}


def _reduce(b, g, name: str, a):
    """mean, sum, max or var (population) of a (B, w) value over w, kept as (B, 1)."""
    if name == "sum":
        return b.op("ReduceSum", [a, g.const([1], "axes")], keepdims=1)
    if name == "max":
        return b.op("ReduceMax", [a], axes=[1], keepdims=1)
    mean = b.op("ReduceMean", [a], axes=[1], keepdims=1)
    if name == "mean":
        return mean
    d = b.op("Sub", [a, mean])
    return b.op("ReduceMean", [b.op("Mul", [d, d])], axes=[1], keepdims=1)


def xp_width(kind: str, u: int) -> int:
    return {"lstm": 4, "gru": 3}.get(kind, 1) * u


def _recurrent(g, node, W, ins: list, init, widths: list):
    o = node.opts
    mask = None
    for m in (v.mask for v in ins if v.mask is not None):     # a step counts when every input's does
        mask = m if mask is None else g.op("And", [mask, m])
    if node.kind == "rnn":
        seq, last, finals = _custom_cell(g, o, W, [v.name for v in ins], widths, mask, init, o["go_backwards"],
                                         o["zero_output_for_mask"])
    else:
        seq, last, finals = _run_cell(g, node.kind, o, W, ins[0].name, mask, init, o["go_backwards"],
                                      o["zero_output_for_mask"])
    out = {}
    if o["return_sequences"]:
        m = mask
        if m is not None and o["go_backwards"]:
            m = g.reverse_time(m)
        out["out"] = Val(seq, "seq", m)
    else:
        out["out"] = Val(last, "vec")
    out["state"] = finals
    return out


def _bidirectional(g, node, W, x: Val, init, width: int):
    spec = node.spec
    inner, back = spec.inner(node), spec.backward(node)
    o = inner.opts
    seq = o["return_sequences"]
    n = len(inner.spec.state_type(inner.opts).parts)
    init_f, init_b = (None, None) if init is None else (init[:n], init[n:])
    k = inner.n_weights
    if back is inner and not o["go_backwards"] and _native(inner.kind, o, x.mask):
        return _merge_halves(g, node, *_native_bidirectional(g, inner, W, k, x, init_f, init_b), _kind_mask(x, seq))
    sf, lf, ff = _run_cell(g, inner.kind, inner.opts, W[:k], x.name, x.mask, init_f, o["go_backwards"], seq,
                           width)
    sb, lb, fb = _run_cell(g, back.kind, back.opts, W[k:], x.name, x.mask, init_b, not o["go_backwards"],
                           seq, width)
    yf, yb = (sf, g.reverse_time(sb)) if seq else (lf, lb)
    return _merge_halves(g, node, yf, yb, list(ff) + list(fb), _kind_mask(x, seq))


def _kind_mask(x: Val, seq: bool):
    return ("seq", x.mask) if seq else ("vec", None)


def _native_bidirectional(g, inner, W, k, x, init_f, init_b):
    """One ONNX operator with direction="bidirectional": (forward outputs, backward outputs,
    both in time order, or the last of each; the final state parts, forward's then backward's)."""
    Y, finals = _native_op(g, inner.kind, inner.opts, [W[:k], W[k:]], x.name, [init_f, init_b], "bidirectional")
    per_dir = [g.op("Split", [f], n_out=2, axis=0) for f in finals]         # each (1, B, u)
    ff = [g.squeeze(p[0], 0) for p in per_dir]
    fb = [g.squeeze(p[1], 0) for p in per_dir]
    if inner.opts["return_sequences"]:
        yf, yb = (g.squeeze(y, 1) for y in g.op("Split", [Y], n_out=2, axis=1))
    else:
        yf, yb = ff[0], fb[0]                       # without a mask the last output is the final h
    return yf, yb, ff + fb


def _merge_halves(g, node, yf, yb, state, kind_and_mask):
    kind, mask = kind_and_mask
    mode = node.opts["merge_mode"]
    out = {"state": state}
    if mode == "concat":
        out["out"] = Val(g.op("Concat", [yf, yb], axis=-1), kind, mask)
    elif mode == "sum":
        out["out"] = Val(g.op("Add", [yf, yb]), kind, mask)
    elif mode == "mul":
        out["out"] = Val(g.op("Mul", [yf, yb]), kind, mask)
    elif mode == "ave":
        out["out"] = Val(g.op("Mul", [g.op("Add", [yf, yb]), g.const(np.float32(0.5))]), kind, mask)
    else:
        out["forward"], out["backward"] = Val(yf, kind, mask), Val(yb, kind, mask)
    return out


# --- the other layers ----------------------------------------------------------------------------

def _embed(g, node, W, x: Val):
    y = g.op("Gather", [g.const(W[0], "embeddings"), x.name], axis=0)
    mask = g.op("Not", [g.op("Equal", [x.name, g.const(np.int64(0))])]) if node.opts["mask_zero"] else None
    return {"out": Val(y, "seq", mask)}


def _dense(g, node, W, x: Val):
    y = g.op("MatMul", [x.name, g.const(W[0], "kernel")])
    if node.opts["use_bias"]:
        y = g.op("Add", [y, g.const(W[1], "bias")])
    return {"out": Val(g.activation(y, node.opts["activation"]), x.kind, x.mask)}


def _batchnorm(g, node, W, x: Val):
    gamma, beta, mean, var = node.spec.named_weights(node.opts, [np.asarray(w, np.float64) for w in W])
    s = 1.0 / np.sqrt(var + node.opts["epsilon"])
    if gamma is not None:
        s = s * gamma
    t = -mean * s + (0.0 if beta is None else beta)
    y = g.op("Add", [g.op("Mul", [x.name, g.const(s, "scale")]), g.const(t, "shift")])
    return {"out": Val(y, x.kind, x.mask)}


def _masking(g, node, W, x: Val):
    differs = g.op("Not", [g.op("Equal", [x.name, g.const(np.float32(node.opts["mask_value"]))])])
    mask = g.op("Cast", [g.op("ReduceMax", [g.op("Cast", [differs], to=1)], axes=[-1], keepdims=0)], to=9)
    y = g.op("Mul", [x.name, g.unsqueeze(g.op("Cast", [mask], to=1), 2)])
    return {"out": Val(y, "seq", mask)}


def _merge(g, node, W, ins):
    names = [v.name for v in ins]
    y = g.op("Concat", names, axis=-1) if node.kind == "concat" else g.op("Sum", names)
    masks = [v.mask for v in ins]
    mask = None
    if all(m is not None for m in masks):
        mask = masks[0]
        for m in masks[1:]:
            mask = g.op("Or", [mask, m])
    return {"out": Val(y, ins[0].kind, mask)}


def _repeat(g, node, W, x: Val):
    y = g.op("Expand", [g.unsqueeze(x.name, 0), g.const([node.opts["n"], 1, 1], "shape")])
    return {"out": Val(y, "seq")}


def _avg_pool(g, node, W, x: Val):
    if x.mask is None:
        return {"out": Val(g.op("ReduceMean", [x.name], axes=[0], keepdims=0), "vec")}
    w = g.unsqueeze(g.op("Cast", [x.mask], to=1), 2)                          # (T, B, 1)
    total = g.op("ReduceSum", [g.op("Mul", [x.name, w]), g.const([0], "axes")], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [w, g.const([0], "axes")], keepdims=0), g.const(np.float32(1))])
    return {"out": Val(g.op("Div", [total, count]), "vec")}


def _max_pool(g, node, W, x: Val):
    return {"out": Val(g.op("ReduceMax", [x.name], axes=[0], keepdims=0), "vec")}


def _flatten(g, node, W, x: Val):
    bt = g.op("Transpose", [x.name], perm=[1, 0, 2])
    return {"out": Val(g.op("Reshape", [bt, g.const([0, -1], "shape")]), "vec")}


def _attention(g, node, W, ins):
    """Scores (B, Tq, Tv), the value's padding and later steps (use_causal_mask) pushed down by
    1e9, a softmax over the value's steps, the context A V (zeros at padded query steps)."""
    q, v = ins[0], ins[1]
    k = ins[2] if len(ins) == 3 else v
    Q, K, V = (g.op("Transpose", [a.name], perm=[1, 0, 2]) for a in (q, k, v))       # batch-major
    mode = node.spec.score_mode(node.opts)
    s, c, w = node.spec.named_weights(node.opts, W)
    if mode == "dot":
        S = g.op("MatMul", [Q, g.op("Transpose", [K], perm=[0, 2, 1])])
        if s is not None:
            S = g.op("Mul", [S, g.const(s, "scale")])
    else:
        U = g.op("Add", [g.unsqueeze(Q, 2), g.unsqueeze(K, 1)])                         # (B, Tq, Tv, d)
        if mode == "concat":
            if s is not None:
                U = g.op("Mul", [U, g.const(s, "scale")])
            S = g.op("Mul", [g.op("ReduceSum", [g.op("Tanh", [U]), g.const([-1], "axes")], keepdims=0),
                             g.const(c, "concat_score_weight")])
        else:
            T = g.op("Tanh", [U])
            if w is not None:
                T = g.op("Mul", [T, g.const(w, "scale")])
            S = g.op("ReduceSum", [T, g.const([-1], "axes")], keepdims=0)
    keep = None
    if v.mask is not None:
        keep = g.unsqueeze(g.op("Transpose", [v.mask], perm=[1, 0]), 1)                   # (B, 1, Tv)
    if node.opts["use_causal_mask"]:
        steps = [g.op("Range", [g.const(np.int64(0)), g.op("Squeeze", [g.op("Gather", [
            g.op("Shape", [a]), g.const([0])], axis=0), g.const([0], "axes")]), g.const(np.int64(1))])
            for a in (q.name, v.name)]
        causal = g.op("LessOrEqual", [g.unsqueeze(steps[1], 0), g.unsqueeze(steps[0], 1)])  # (Tq, Tv)
        keep = causal if keep is None else g.op("And", [keep, causal])
    if keep is not None:
        S = g.op("Where", [keep, S, g.op("Sub", [S, g.const(np.float32(1e9), "shift")])])
    A = g.op("Softmax", [S], axis=-1)
    C = g.op("MatMul", [A, V])
    if q.mask is not None:
        C = g.op("Mul", [C, g.unsqueeze(g.op("Cast", [g.op("Transpose", [q.mask], perm=[1, 0])], to=1), 2)])
    out = {"out": Val(g.op("Transpose", [C], perm=[1, 0, 2]), "seq", q.mask)}
    if node.opts["return_attention_scores"]:
        out[node.spec.scores_port] = Val(g.op("Transpose", [A], perm=[1, 0, 2]), "seq")
    return out


SIMPLE = {"embed": _embed, "dense": _dense, "batchnorm": _batchnorm, "masking": _masking,
          "repeat": _repeat, "global_avg_pool": _avg_pool, "global_max_pool": _max_pool, "flatten": _flatten,
          "dropout": lambda g, node, W, x: {"out": x}}


# --- the model -----------------------------------------------------------------------------------

def _weights_by_node(model) -> dict:
    weights, k, out = model.get_weights(), 0, {}
    for node in model.graph.keras_order():
        out[node.id] = weights[k:k + len(node.weights)]
        k += len(node.weights)
    return out


def to_onnx(model):
    """The model as an onnx.ModelProto (see the module's docstring); RnnError for a layer
    that cannot be exported."""
    onnx, helper, numpy_helper = _onnx()
    graph = model.graph
    g = _Graph(helper, numpy_helper)
    W = _weights_by_node(model)
    vals: dict = {}
    inputs, outputs = [], []
    for node in graph.nodes:
        if node.kind == "input":
            t = node.out
            steps = f"steps_{node.name}"
            if t.is_tokens:
                inputs.append(helper.make_tensor_value_info(node.name, onnx.TensorProto.INT64, ["batch", steps]))
                vals[(node.id, "out")] = Val(g.op("Transpose", [node.name], perm=[1, 0]), "tok")
            elif t.seq:
                inputs.append(helper.make_tensor_value_info(node.name, onnx.TensorProto.FLOAT,
                                                            ["batch", steps, t.features]))
                vals[(node.id, "out")] = Val(g.op("Transpose", [node.name], perm=[1, 0, 2]), "seq")
            else:
                inputs.append(helper.make_tensor_value_info(node.name, onnx.TensorProto.FLOAT, ["batch", t.features]))
                vals[(node.id, "out")] = Val(node.name, "vec")
            continue
        ins = [vals[(r.node, r.port)] for r in node.inputs]
        init = None if node.initial_state is None else vals[(node.initial_state.node, node.initial_state.port)]
        if node.kind == "state_pack":
            outs = {"state": [v.name for v in ins]}
        elif node.kind == "state_part":
            outs = {"out": Val(ins[0][node.opts["part"]], "vec")}
        elif node.spec.recurrent and hasattr(node.spec, "inner"):          # bidirectional, bilstm, ...
            outs = _bidirectional(g, node, W[node.id], ins[0], init, graph.type_of(node.inputs[0]).features)
        elif node.kind in RECURRENT or node.kind == "rnn":
            outs = _recurrent(g, node, W[node.id], ins, init, [graph.type_of(r).features for r in node.inputs])
        elif node.kind in ("concat", "add"):
            outs = _merge(g, node, W[node.id], ins)
        elif node.kind in ("attention", "additive_attention"):
            outs = _attention(g, node, W[node.id], ins)
        elif node.kind in SIMPLE:
            outs = SIMPLE[node.kind](g, node, W[node.id], ins[0])
        else:
            _refuse(node, "no ONNX mapping for this layer kind")
        for port, v in outs.items():
            vals[(node.id, port)] = v
    for o in graph.outputs:
        v = vals.get((o.ref.node, o.ref.port))
        if not isinstance(v, Val):
            raise RnnError(f"output {o.name!r} ({o.ref.port} of {graph.nodes[o.ref.node].name!r}) cannot be exported "
                           "to ONNX: output a state's parts (`output h, c = layer.state`)")
        t = graph.type_of(o.ref)
        if v.kind == "seq":
            g.nodes.append(helper.make_node("Transpose", [v.name], [o.name], perm=[1, 0, 2]))
            shape = ["batch", None, t.features]
        else:
            g.nodes.append(helper.make_node("Identity", [v.name], [o.name]))
            shape = ["batch", t.features]
        outputs.append(helper.make_tensor_value_info(o.name, onnx.TensorProto.FLOAT, shape))
    og = helper.make_graph(g.nodes, model.name, inputs, outputs, initializer=g.inits)
    proto = helper.make_model(og, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rnndsl")
    proto.ir_version = min(proto.ir_version, 8)       # what onnxruntime 1.17 reads
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path) -> None:
    """Write the model as an ONNX file (to_onnx)."""
    onnx, _, _ = _onnx()
    proto = to_onnx(model)
    try:
        onnx.save(proto, str(path))
    except OSError as e:
        raise RnnError(f"cannot write {path}: {e.strerror or e}") from None
