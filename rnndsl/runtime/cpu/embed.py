"""Embedding on the CPU: the table and the ids travel on (an Act's `gathered`) until a
layer reads E[ids]; backward sums the rows' gradients by id (math: layers/embed.py)."""

from __future__ import annotations

import numpy as np

from ...kernels.cpu.ops import embedding_grad
from ..tensor import Act, TableGrad


def forward(node, W, ins, ctx, init_state=None):
    """E[ids], made when a layer reads it; the mask ids != 0 with mask_zero."""
    ids = ins[0].data                                         # (T, B) token ids
    E = W[0]
    mask = (ids != 0).astype(np.uint8) if node.opts["mask_zero"] else None

    def backprop(d):
        if not node.opts["trainable"]:
            return [None], [None], None
        g = d["out"]
        if isinstance(g, TableGrad):                          # summed by id already
            return [None], [g.dE], None
        dE = embedding_grad(ids.reshape(-1), g.reshape(-1, E.shape[1]), E.shape[0])
        return [None], [dE], None

    # E[ids] (T, B, dim), made when a layer reads it (an LSTM may take E and ids instead)
    return {"out": Act(mask=mask, gathered=(E, ids))}, backprop
