"""RepeatVector: a vector (batch, f) -> the sequence (batch, n, f) of n copies."""

from __future__ import annotations

import numpy as np

from ..runtime.tensor import Act

from ..types import TensorType
from .base import LayerSpec, Opt, register


@register
class Repeat(LayerSpec):
    name = "repeat"
    aliases = ("repeat_vector",)
    keras_class = "RepeatVector"
    keras_name = "repeat_vector"
    positional = ("n",)
    options = {"n": Opt("units", required=True, doc="3"), "name": Opt("string", None)}

    def infer(self, node, ins, ctx) -> None:
        (x,) = ins
        if x.seq:
            ctx.error(node, f"repeat turns a vector into a sequence, but its input is already {x.describe()}",
                      "drop `seq` from the layer before it, or drop repeat")
            return
        node.outputs["out"] = TensorType(True, x.features, node.opts["n"])

    def forward(self, node, W, ins, ctx, init_state=None):
        x = ins[0].data                                           # (B, F)
        y = np.ascontiguousarray(np.broadcast_to(x, (node.opts["n"],) + x.shape))
        return {"out": Act(y)}, lambda d: ([d["out"].sum(axis=0)], [], None)   # undo the copies
