"""Running a recurrent layer, the part every engine shares: written once over a small ops
object, the engine's arrays and a few operations on them (thinc's Ops is the model).

Here: the state a call starts from (an initial_state edge, a stateful layer's carried
state, or zeros), the dropout masks (drawn on the host from the run's generator, so that
every engine draws the same numbers in the same order), what the layer returns (the
last output or every output with the input's mask, reversed in time for go_backwards;
the final state; the state carried for a stateful layer) with the backprop that turns
the gradient of what it returned into the gradient of the whole output for the cell's
backward, and Bidirectional's merge and its backward. Running a cell over the steps is
each engine's (runtime/cpu, runtime/cuda); the math is in the layers' docstrings
(rnndsl/layers).

An ops object provides:

    act(data, mask)            what flows to the next layer (mask: the engine's, or None)
    reversed_mask(mask)        the (T, B) mask reversed in time
    zeros(shape, dtype)        a zero array (the cell's backward only reads it)
    zeros_like(a), add(a, b), mul(a, b), scale(a, alpha)       new arrays
    assign(dst, src)           dst[...] = src
    reverse_time(a)            a new array: a[::-1] along the first axis
    concat_features(a, b)      [a, b] along the last axis; split_features(g, u) undoes it
    concat_reversed(a, b)      concat_features(a, reverse_time(b))
    as_dout(g, out)            g (or the engine's one copy of it) where the cell's backward
                               can read it as the gradient of out, else None (then it is
                               copied into zeros)
    last_into_final            a last-output-only layer without a mask passes the output's
                               gradient on as the final h's (the last output is the final
                               h) and gives the cell read_only_zeros(shape, dtype) as dout
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np


def output_is_first_state(opts) -> bool:
    """Whether the layer's output at a step is its first state (its h): every built-in kind
    and a cell without an `output = ...` equation. Else the output is the cell's own, which
    over zero steps is zeros (Keras starts the previous output there)."""
    cell = opts.get("cell")
    return cell is None or cell.output is None


def start_state(node, ctx, init_state, batch: int, stateful: bool):
    """(the state a call starts from, whether it came through an initial_state edge). As in
    Keras 3: a given initial state on every call, else a stateful layer's carried state,
    else None (zeros). A stateful layer's batch size is checked either way. While decoding
    (ctx.carry, a dict: runtime/decode.py) the state the layer's previous step left comes
    first, and a stateful layer's carried state is neither read nor written."""
    if ctx.carry is not None:
        if node.id in ctx.carry:
            return ctx.carry[node.id], False
        return init_state, init_state is not None
    carried = ctx.stateful_state(node, batch) if stateful else None
    if init_state is not None:
        return init_state, True
    return carried, False


def bidirectional_states(node, ctx, init_state, batch: int):
    """(the forward half's initial states, the backward half's, whether they came through an
    initial_state edge): the edge's states or a stateful layer's carried ones (see
    start_state), split in two; None, None without either."""
    inner = node.spec.inner(node)
    init, from_edge = start_state(node, ctx, init_state, batch, inner.opts["stateful"])
    if init is None:
        return None, None, from_edge
    n = len(inner.spec.state_type(inner.opts).parts)
    return tuple(init[:n]), tuple(init[n:]), from_edge


def dropout_masks(opts, ctx, B: int, F: int, u: int, dtype):
    """Host input (B, F) and recurrent (B, u) dropout masks, scaled by 1/(1-p): one per
    sequence, as Keras draws them, and only in training (None otherwise)."""
    if not ctx.training:
        return None, None
    dtype = np.dtype(dtype)
    dmask = rmask = None
    if ctx.training and opts["dropout"] > 0:
        p = opts["dropout"]
        dmask = (ctx.rng.random((B, F)) >= p).astype(dtype) / dtype.type(1 - p)
    if ctx.training and opts["recurrent_dropout"] > 0:
        p = opts["recurrent_dropout"]
        rmask = (ctx.rng.random((B, u)) >= p).astype(dtype) / dtype.type(1 - p)
    return dmask, rmask


def _last(out):
    return out[out.shape[0] - 1]


def step_grads(ops, T: int, out, seq: bool, g):
    """The gradient of the whole (T, B, u) output from g, the gradient of what the layer
    returned: every step's with seq, else the last step's (None: no gradient)."""
    if seq and g is not None:
        d = ops.as_dout(g, out)
        if d is not None:
            return d
    dout = ops.zeros((T,) + tuple(out.shape[1:]), out.dtype)
    if g is not None:
        ops.assign(dout if seq else dout[T - 1], g)
    return dout


def layer_outputs(ops, node, ctx, T: int, out, final, mask, cell_backprop, from_edge: bool):
    """What a recurrent layer returns, and its backprop: the stateful carry kept; the last
    step, or every step with the input's mask (time-reversed for go_backwards); the final
    state with return_state. out: (T, B, u) in processing order, or (1, B, u) when the cell
    ran for the last output only. cell_backprop(dout, dfinal) -> (d inputs, weight grads,
    dinit) over the whole (T, B, u) output; dinit goes back through an initial_state edge
    only."""
    o = node.opts
    if ctx.carry is not None:
        ctx.carry[node.id] = final
    elif o["stateful"]:
        ctx.keep_state(node, final)
    seq = o["return_sequences"]
    if seq:
        m = ops.reversed_mask(mask) if (mask is not None and o["go_backwards"]) else mask
        outputs = {"out": ops.act(out, m)}
    else:
        outputs = {"out": ops.act(_last(out), None)}
    if o["return_state"]:
        outputs["state"] = final

    first_state = output_is_first_state(o)

    def backprop(d):
        dfinal = d.get("state") or tuple(ops.zeros_like(s) for s in final)
        g = d.get("out")
        if T == 0 and not first_state:
            g = None                # the last output over zero steps is zeros: no gradient
        if not seq and ops.last_into_final and first_state and (mask is None or T == 0):
            # the last output is the final h (over zero steps the initial h): its gradient
            # joins dh_T, and every step's dout is a zero array the cell only reads
            dout = ops.read_only_zeros((T,) + tuple(out.shape[1:]), out.dtype)
            if g is not None:
                dfinal = (ops.add(dfinal[0], g),) + tuple(dfinal[1:])
        else:
            dout = step_grads(ops, T, out, seq, g)
        d_ins, grads, dinit = cell_backprop(dout, dfinal)
        return d_ins, grads, (dinit if from_edge else None)

    return outputs, backprop


def bidirectional_outputs(ops, node, ctx, init_state, T: int, B: int, mask, run_half):
    """Bidirectional's two halves and their merge (concat, sum, mul, ave, or none: two
    outputs), and its backprop. run_half(k, init, backwards, zero_out) runs the inner
    layer's cell with the weights of half k (0 forward, 1 backward) over the input:
    (out, final, backprop(dout, dfinal) -> (dX or None, grads, dinit)). mask: the input's."""
    inner = node.spec.inner(node)
    o = inner.opts
    init_f, init_b, from_edge = bidirectional_states(node, ctx, init_state, B)
    seq = o["return_sequences"]
    # Keras sets both halves' zero_output_for_mask to return_sequences, whatever the
    # wrapped layer says: without sequences a padded row's halves are its last valid outputs
    zero_out = seq
    fwd_backwards = o["go_backwards"]
    with ops.together():        # the halves read nothing the other writes: they may run at once
        out_f, fin_f, bp_f = run_half(0, init_f, fwd_backwards, zero_out)
        out_b, fin_b, bp_b = run_half(1, init_b, not fwd_backwards, zero_out)
    final = tuple(fin_f) + tuple(fin_b)
    if o["stateful"] and ctx.carry is None:
        ctx.keep_state(node, final)
    # the backward half ran in reverse; put its sequence back in time order (concat: within
    # the merge's copy; only mul's backprop reads yb)
    mode = node.opts["merge_mode"]
    if seq and mode == "concat":
        yf, yb = out_f, None
    else:
        yf, yb = (out_f, ops.reverse_time(out_b)) if seq else (_last(out_f), _last(out_b))
    u = o["units"]
    if mode == "concat":
        merged = {"out": ops.concat_reversed(yf, out_b) if seq else ops.concat_features(yf, yb)}
    elif mode == "sum":
        merged = {"out": ops.add(yf, yb)}
    elif mode == "mul":
        merged = {"out": ops.mul(yf, yb)}
    elif mode == "ave":
        merged = {"out": ops.scale(ops.add(yf, yb), 0.5)}
    else:
        merged = {"forward": yf, "backward": yb}
    outputs = {k: ops.act(v, mask if seq else None) for k, v in merged.items()}
    if o["return_state"]:
        outputs["state"] = final

    def backprop(d):
        g = d.get("out")
        if g is not None:                       # undo the merge
            if mode == "concat":
                dyf, dyb = ops.split_features(g, u)
            elif mode == "sum":
                dyf = dyb = g
            elif mode == "mul":
                dyf, dyb = ops.mul(g, yb), ops.mul(g, yf)
            else:
                dyf = dyb = ops.scale(g, 0.5)
        else:
            dyf, dyb = d.get("forward"), d.get("backward")
        n_states = len(inner.spec.state_type(o).parts)
        dstate = list(d.get("state") or (ops.zeros_like(s) for s in final))
        if T == 0 and not seq:
            # zero steps: the last outputs were the initial h's (zeros for a cell's own output)
            if dyf is not None and output_is_first_state(o):
                dstate[0] = ops.add(dstate[0], dyf)
            if dyb is not None and output_is_first_state(node.spec.backward(node).opts):
                dstate[n_states] = ops.add(dstate[n_states], dyb)
            dyf = dyb = None
        elif seq and dyb is not None:
            dyb = ops.reverse_time(dyb)          # undo the re-reversal
        dout_f = step_grads(ops, T, out_f, seq, dyf)
        dout_b = step_grads(ops, T, out_b, seq, dyb)
        # as in the forward, the halves' time loops may run at once: where both are the same
        # layer, so that both hold theirs back or neither (one held alone would run on a
        # single worker, with its weight gradients in one accumulator)
        with ops.together() if node.spec.backward(node) is inner else nullcontext():
            dX_f, g_f, dinit_f = bp_f(dout_f, tuple(dstate[:n_states]))
            dX_b, g_b, dinit_b = bp_b(dout_b, tuple(dstate[n_states:]))
        # None where x's gradient is not needed: a custom cell's half makes one anyway
        dX = None if dX_f is None or dX_b is None else ops.add(dX_f, dX_b)
        return [dX], g_f + g_b, (tuple(dinit_f) + tuple(dinit_b) if from_edge else None)

    return outputs, backprop
