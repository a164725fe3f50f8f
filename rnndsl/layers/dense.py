"""Dense: y = act(x W + b), W (in, units); on a sequence it applies at every step.

act: linear (default), relu, tanh, sigmoid, hard_sigmoid or softmax (over the last axis).
"""

from __future__ import annotations

from ..types import WeightSpec
from .base import LayerSpec, Opt, register


@register
class Dense(LayerSpec):
    name = "dense"
    per_step = True
    keras_class = "Dense"
    keras_name = "dense"
    positional = ("units",)
    options = {
        "units": Opt("units", required=True, doc="10"),
        "activation": Opt("activation", "linear"),
        "use_bias": Opt("bool", True),
        "trainable": Opt("bool", True),
        "name": Opt("string", None),
    }

    def infer(self, node, ins, ctx) -> None:
        (x,) = ins
        if x.is_tokens:
            ctx.error(node, "dense takes feature vectors, but its input is token ids",
                      "put embed(vocab, dim) in front of it")
            return
        o = node.opts
        node.weights = [WeightSpec(f"{node.name}/kernel", (x.features, o["units"]), "glorot_uniform", o["trainable"])]
        if o["use_bias"]:
            node.weights.append(WeightSpec(f"{node.name}/bias", (o["units"],), "zeros", o["trainable"]))
        node.outputs["out"] = x.with_(features=o["units"])
