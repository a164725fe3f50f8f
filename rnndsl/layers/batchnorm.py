"""BatchNormalization over the last axis:

    training:  y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta,
               moving = momentum * moving + (1 - momentum) * batch statistic
    inference: y = gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta

momentum 0.99, epsilon 1e-3 (Keras). Weights gamma, beta (trainable) and
moving_mean, moving_variance (not trainable). On a sequence the statistics are
taken over batch and steps (masked steps excluded).
"""

from __future__ import annotations

import numpy as np

from ..runtime.tensor import Act, flat

from ..types import WeightSpec
from .base import LayerSpec, Opt, register


@register
class BatchNorm(LayerSpec):
    name = "batchnorm"
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

    def forward(self, node, W, ins, ctx, init_state=None):
        x = ins[0]
        o = node.opts
        k = 0
        gamma = beta = None
        if o["scale"]:
            gamma, k = W[k], k + 1
        if o["center"]:
            beta, k = W[k], k + 1
        moving_mean, moving_var = W[k], W[k + 1]
        X = flat(x.data)
        eps = o["epsilon"]
        if ctx.training:
            # batch statistics over every unmasked row (batch and, for sequences, steps)
            w = np.ones(len(X), X.dtype) if x.mask is None else flat(x.mask[..., None]).astype(X.dtype)[:, 0]
            n = max(w.sum(), 1.0)
            mean = (w @ X) / n
            Xc = X - mean
            var = (w @ (Xc * Xc)) / n
            m = o["momentum"]
            if w.sum() > 0:     # zero steps (or every step masked): no statistics to move toward
                ctx.updates.append((moving_mean, m * moving_mean + (1 - m) * mean))
                ctx.updates.append((moving_var, m * moving_var + (1 - m) * var))
        else:
            mean, var, w, n = moving_mean, moving_var, None, None
            Xc = X - mean
        inv_std = 1.0 / np.sqrt(var + eps)
        Xhat = Xc * inv_std
        Y = Xhat * gamma if gamma is not None else Xhat.copy()
        if beta is not None:
            Y += beta

        def backprop(d):
            dY = flat(d["out"])
            dXhat = dY * gamma if gamma is not None else dY          # undo Y = gamma * Xhat + beta
            grads = []
            if gamma is not None:
                grads.append((dY * Xhat).sum(axis=0))
            if beta is not None:
                grads.append(dY.sum(axis=0))
            grads += [None, None]                                      # moving statistics: not trained
            if w is None:                                              # inference: statistics are constants
                return [(dXhat * inv_std).reshape(x.data.shape)], grads, None
            # undo Xhat = (X - mean) * inv_std with mean and var taken over the weighted rows
            dvar = -0.5 * (dXhat * Xc).sum(axis=0) * inv_std ** 3
            dmean = -dXhat.sum(axis=0) * inv_std
            dX = dXhat * inv_std + (w[:, None] / n) * (dmean + 2.0 * Xc * dvar)
            return [dX.reshape(x.data.shape)], grads, None

        return {"out": Act(Y.reshape(x.data.shape), x.mask)}, backprop
