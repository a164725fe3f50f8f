"""States in and out of a model on the CPU (layers/state.py): a part of a state as a vector,
vectors as a state; gradients pass through both."""

from __future__ import annotations

import numpy as np

from ..tensor import Act


def part_forward(node, W, ins, ctx, init_state=None):
    """out = state[k]; its gradient goes to part k of the state's (zeros for the others)."""
    state, k = ins[0], node.opts["part"]

    def backprop(d):
        return [tuple(d["out"] if j == k else np.zeros_like(s) for j, s in enumerate(state))], [], None

    return {"out": Act(state[k])}, backprop


def pack_forward(node, W, ins, ctx, init_state=None):
    """state = (v_1, ..., v_n); part j's gradient goes to v_j."""
    return {"state": tuple(np.ascontiguousarray(a.data) for a in ins)}, lambda d: (list(d["state"]), [], None)
