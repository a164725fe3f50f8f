"""RepeatVector on the CPU: (B, F) -> (n, B, F) time-major; backward sums the copies."""

from __future__ import annotations

import numpy as np

from ..tensor import Act


def forward(node, W, ins, ctx, init_state=None):
    """n copies of the vector, one per step."""
    x = ins[0].data                                           # (B, F)
    y = np.ascontiguousarray(np.broadcast_to(x, (node.opts["n"],) + x.shape))
    return {"out": Act(y)}, lambda d: ([d["out"].sum(axis=0)], [], None)   # undo the copies
