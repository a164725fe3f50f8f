"""Embedding: token id k -> row k of a (vocab, dim) table.

    y[b, t] = E[x[b, t]]          E: (vocab, dim), uniform(-0.05, 0.05) by default

mask_zero=true makes id 0 padding: a mask (x != 0) travels with the output
to the recurrent layers downstream. trainable=false freezes the table.
weights="vectors.txt" loads pretrained GloVe-format vectors.
"""

from __future__ import annotations

from ..types import TensorType, WeightSpec
from .base import LayerSpec, Opt, register


@register
class Embed(LayerSpec):
    name = "embed"
    per_step = True
    aliases = ("embedding",)
    keras_class = "Embedding"
    keras_name = "embedding"
    positional = ("input_dim", "output_dim")
    options = {
        "input_dim": Opt("units", required=True, doc="1000"),
        "output_dim": Opt("units", required=True, doc="64"),
        "mask_zero": Opt("bool", False),
        "trainable": Opt("bool", True),
        "weights": Opt("string", None),
        "name": Opt("string", None),
    }

    def infer(self, node, ins, ctx) -> None:
        (x,) = ins
        if not x.is_tokens:
            ctx.error(node, f"embed looks up token ids, but its input is {x.describe()}",
                      "declare the input as int[steps], e.g. `input x: int[?]`")
            return
        o = node.opts
        node.weights = [WeightSpec(f"{node.name}/embeddings", (o["input_dim"], o["output_dim"]),
                                   "uniform_0.05", o["trainable"])]
        node.outputs["out"] = TensorType(True, o["output_dim"], x.steps, masked=o["mask_zero"])
