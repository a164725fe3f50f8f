"""BatchNormalization over the last axis:

    training:  y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta,
               moving = momentum * moving + (1 - momentum) * batch statistic
    inference: y = gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta

momentum 0.99, epsilon 1e-3 (Keras). Weights gamma, beta (trainable) and
moving_mean, moving_variance (not trainable). On a sequence the statistics are
taken over batch and steps (masked steps excluded).
"""

from __future__ import annotations

from ..types import WeightSpec
from .base import LayerSpec, Opt, register


@register
class BatchNorm(LayerSpec):
    name = "batchnorm"
    per_step = True
    aliases = ("batch_normalization", "batchnormalization")
    keras_class = "BatchNormalization"
    keras_name = "batch_normalization"
    options = {
        "momentum": Opt("rate", 0.99),
        "epsilon": Opt("posfloat", 1e-3),
        "center": Opt("bool", True),
        "scale": Opt("bool", True),
        "trainable": Opt("bool", True),
        "name": Opt("string", None),
    }

    def infer(self, node, ins, ctx) -> None:
        (x,) = ins
        if x.is_tokens:
            ctx.error(node, "batchnorm takes feature vectors, but its input is token ids",
                      "put embed(vocab, dim) in front of it")
            return
        o, f, p = node.opts, x.features, node.name
        tr = o["trainable"]
        if o["scale"]:
            node.weights.append(WeightSpec(f"{p}/gamma", (f,), "ones", tr))
        if o["center"]:
            node.weights.append(WeightSpec(f"{p}/beta", (f,), "zeros", tr))
        node.weights += [WeightSpec(f"{p}/moving_mean", (f,), "zeros", False),
                         WeightSpec(f"{p}/moving_variance", (f,), "ones", False)]
        node.outputs["out"] = x

    @staticmethod
    def named_weights(opts, W) -> tuple:
        """(gamma or None, beta or None, moving_mean, moving_variance) from the node's weights,
        in the order infer lists them (Keras's)."""
        k = 0
        gamma = beta = None
        if opts["scale"]:
            gamma, k = W[k], k + 1
        if opts["center"]:
            beta, k = W[k], k + 1
        return gamma, beta, W[k], W[k + 1]
