"""Dropout: in training y = x * m / (1 - rate), m ~ Bernoulli(1 - rate); identity in inference."""

from __future__ import annotations


from ..runtime.tensor import Act

from .base import LayerSpec, Opt, register


@register
class Dropout(LayerSpec):
    name = "dropout"
    keras_class = "Dropout"
    keras_name = "dropout"
    positional = ("rate",)
    options = {"rate": Opt("rate", required=True, doc="0.5"), "seed": Opt("int0", None),
               "name": Opt("string", None)}

    def infer(self, node, ins, ctx) -> None:
        node.outputs["out"] = ins[0]

    def forward(self, node, W, ins, ctx, init_state=None):
        x = ins[0]
        rate = node.opts["rate"]
        if not ctx.training or rate == 0.0:
            return {"out": x}, lambda d: ([d["out"]], [], None)
        keep = (ctx.rng.random(x.data.shape) >= rate).astype(x.data.dtype) / (1.0 - rate)
        return {"out": Act(x.data * keep, x.mask)}, lambda d: ([d["out"] * keep], [], None)
