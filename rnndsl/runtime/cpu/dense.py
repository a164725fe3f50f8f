"""Dense on the CPU: Y = act(X W + b) over the rows (math: layers/dense.py)."""

from __future__ import annotations

from itertools import accumulate

import numpy as np

from ...kernels.cpu.parallel import column_sums, matmul
from .. import activations
from ..tensor import Act, flat


def forward(node, W, ins, ctx, init_state=None):
    """One product over all rows (steps x batch), the bias and the activation. Over a
    concat not yet joined, [X_1, X_2, ...] W = X_1 W_1 + X_2 W_2 + ... with W_k the kernel's
    rows for part k: the parts are read in place, the join never made."""
    x = ins[0]
    kernel, bias = W[0], (W[1] if node.opts["use_bias"] else None)
    parts = x.unmade_parts()
    if parts is not None:
        Xs = [flat(p) for p in parts]
        cuts = list(accumulate((p.shape[1] for p in Xs), initial=0))
        Z = matmul(Xs[0], kernel[cuts[0]:cuts[1]])
        for k in range(1, len(Xs)):
            Z += matmul(Xs[k], kernel[cuts[k]:cuts[k + 1]])
    else:
        X = flat(x.data)
        Z = matmul(X, kernel)                       # (rows, in) @ (in, units)
    if bias is not None:
        Z += bias
    act = node.opts["activation"]
    Y = activations.forward(act, Z)
    shape = x.shape[:-1] + (kernel.shape[1],)

    def backprop(d):
        dZ = activations.backward(act, Y, flat(d["out"]))     # undo Y = act(Z)
        if parts is None:
            dK = matmul(X.T, dZ)                               # undo Z = X @ kernel
        else:                                                  # each part's rows of it
            dK = np.concatenate([matmul(Xk.T, dZ) for Xk in Xs], axis=0)
        dX = matmul(dZ, kernel.T).reshape(x.shape)
        return [dX], [dK] + ([column_sums(dZ)] if bias is not None else []), None

    return {"out": Act(Y.reshape(shape), x.mask)}, backprop
