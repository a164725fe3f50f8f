"""Dense: y = act(x W + b), W (in, units); on a sequence it applies at every step.

act: linear (default), relu, tanh, sigmoid, hard_sigmoid or softmax (over the last axis).
"""

from __future__ import annotations


from ..kernels.cpu.parallel import column_sums, matmul
from ..runtime import activations
from ..runtime.tensor import Act, flat

from ..types import WeightSpec
from .base import LayerSpec, Opt, register


@register
class Dense(LayerSpec):
    name = "dense"
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

    def forward(self, node, W, ins, ctx, init_state=None):
        x = ins[0]
        kernel, bias = W[0], (W[1] if node.opts["use_bias"] else None)
        X = flat(x.data)
        Z = matmul(X, kernel)                           # (rows, in) @ (in, units)
        if bias is not None:
            Z += bias
        act = node.opts["activation"]
        Y = activations.forward(act, Z)
        shape = x.data.shape[:-1] + (kernel.shape[1],)

        def backprop(d):
            dZ = activations.backward(act, Y, flat(d["out"]))     # undo Y = act(Z)
            dK = matmul(X.T, dZ)                                   # undo Z = X @ kernel
            dX = matmul(dZ, kernel.T).reshape(x.data.shape)
            return [dX], [dK] + ([column_sums(dZ)] if bias is not None else []), None

        return {"out": Act(Y.reshape(shape), x.mask)}, backprop
