"""Dense on the CPU: Y = act(X W + b) over the rows (math: layers/dense.py)."""

from __future__ import annotations

from ...kernels.cpu.parallel import column_sums, matmul
from .. import activations
from ..tensor import Act, flat


def forward(node, W, ins, ctx, init_state=None):
    """One product over all rows (steps x batch), the bias and the activation."""
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
