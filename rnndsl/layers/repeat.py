"""RepeatVector: a vector (batch, f) -> the sequence (batch, n, f) of n copies."""

from __future__ import annotations

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
