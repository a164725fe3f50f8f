"""Bidirectional (and bilstm, bigru, birnn) on the CPU: the wrapped kind's cell run twice,
then runtime/recurrent.py's merge (math: layers/bidirectional.py)."""

from __future__ import annotations

from ..recurrent import bidirectional_outputs
from . import gru, lstm, rnn, simplernn
from .ops import OPS

CELLS = {c.name: c for c in (simplernn.CELL, lstm.CELL, gru.CELL, rnn.CELL)}


def forward(node, W, ins, ctx, init_state=None):
    """Two cell runs over x, one reading it backwards, and their merge."""
    halves = (node.spec.inner(node), node.spec.backward(node))
    x = ins[0]
    T, B, _ = x.shape
    n = halves[0].n_weights
    need_dx = ctx.needs_grad(node.inputs[0])

    def run_half(k, init, backwards, zero_out):
        half = halves[k]
        return CELLS[half.kind].run_cell(half.opts, W[:n] if k == 0 else W[n:], x, ctx, init, backwards, zero_out,
                                         need_dx=need_dx)

    return bidirectional_outputs(OPS, node, ctx, init_state, T, B, x.mask, run_half)
