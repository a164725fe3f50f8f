"""concat and add on the CPU (math: layers/merge.py); the step check and the merged mask
are runtime/merge.py's, shared with the CUDA engine."""

from __future__ import annotations

import numpy as np

from ...kernels.cpu import buffers
from ..merge import combine_masks, same_steps
from ..tensor import Act


def concat_forward(node, W, ins, ctx, init_state=None):
    """[a, b, ...] along the features; backward splits the gradient."""
    same_steps(node, ins)
    sizes = np.cumsum([a.data.shape[-1] for a in ins])[:-1]
    parts = [a.data for a in ins]
    width = sum(p.shape[-1] for p in parts)
    # into the train step's pool (kernels/cpu/buffers.py): reused by the next step
    y = np.concatenate(parts, axis=-1, out=buffers.empty(parts[0].shape[:-1] + (width,), np.result_type(*parts)))
    return {"out": Act(y, combine_masks([a.mask for a in ins]))}, \
        lambda d: (np.split(d["out"], sizes, axis=-1), [], None)


def add_forward(node, W, ins, ctx, init_state=None):
    """a + b + ...; each input gets the whole gradient."""
    same_steps(node, ins)
    y = ins[0].data.copy()
    for a in ins[1:]:
        y += a.data
    return {"out": Act(y, combine_masks([a.mask for a in ins]))}, lambda d: ([d["out"]] * len(ins), [], None)
