"""Bidirectional (and bilstm, bigru, birnn) on the CPU: the wrapped kind's cell run twice,
then runtime/recurrent.py's merge (math: layers/bidirectional.py)."""

from __future__ import annotations

from ..recurrent import bidirectional_outputs
from . import gru, lstm, rnn, simplernn
from .ops import OPS

CELLS = {c.name: c for c in (simplernn.CELL, lstm.CELL, gru.CELL, rnn.CELL)}


def forward(node, W, ins, ctx, init_state=None):
    """Two cell runs over x, one reading it backwards, and their merge. In inference, the
    two calls made ready by an earlier one (_again) where they fit."""
    done = ctx.run_prepared(node, W, ins, init_state)
    if done is not None:
        return done
    halves = (node.spec.inner(node), node.spec.backward(node))
    x = ins[0]
    T, B, _ = x.shape
    n = halves[0].n_weights
    need_dx = ctx.needs_grad(node.inputs[0])
    ready = ([], []) if ctx.prepares(any(h.opts["stateful"] for h in halves)) else (None, None)

    def run_half(k, init, backwards, zero_out):
        half = halves[k]
        return CELLS[half.kind].run_cell(half.opts, W[:n] if k == 0 else W[n:], x, ctx, init, backwards, zero_out,
                                         need_dx=need_dx, ready=ready[k])

    done = bidirectional_outputs(OPS, node, ctx, init_state, T, B, x.mask, run_half)
    if ready[0] and ready[1] and init_state is None:
        ctx.keep_prepared(node, W, _again(node, halves, (ready[0][0], ready[1][0]), W[0].dtype))
    return done


def _again(node, halves, runs, dtype):
    """The layer's inference made ready: both halves' calls (Recurrent.again) on a new input
    without a mask and no initial state, merged as forward merges them; None where either
    call does not fit the input."""
    cells = [CELLS[h.kind] for h in halves]

    def again(ins, init_state, ctx):
        x = ins[0]
        if init_state is not None or x.mask is not None or x.gathered is not None:
            return None
        X = [c.ready_input(h.opts, x) for c, h in zip(cells, halves)]
        B = X[0].shape[1]
        init = [c.zero_state(h.opts, B, dtype) for c, h in zip(cells, halves)]
        if not all(c.run_fits(r, Xk, s) for c, r, Xk, s in zip(cells, runs, X, init)):
            return None

        def run_half(k, _init, _backwards, _zero_out):
            out, final = cells[k].run_again(runs[k], X[k], init[k])
            return out, final, None

        return bidirectional_outputs(OPS, node, ctx, None, X[0].shape[0], B, None, run_half)

    return again
