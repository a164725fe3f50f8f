"""Dropout: in training y = x * m / (1 - rate), m ~ Bernoulli(1 - rate); identity in inference."""

from __future__ import annotations

from .base import LayerSpec, Opt, register


@register
class Dropout(LayerSpec):
    name = "dropout"
    per_step = True
    keras_class = "Dropout"
    keras_name = "dropout"
    positional = ("rate",)
    options = {"rate": Opt("rate", required=True, doc="0.5"), "seed": Opt("int0", None),
               "name": Opt("string", None)}

    def infer(self, node, ins, ctx) -> None:
        node.outputs["out"] = ins[0]
