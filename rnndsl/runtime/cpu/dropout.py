"""Dropout on the CPU: x * m / (1 - rate) in training, m drawn from the run's generator."""

from __future__ import annotations

from ..tensor import Act


def forward(node, W, ins, ctx, init_state=None):
    """The identity outside training or at rate 0."""
    x = ins[0]
    rate = node.opts["rate"]
    if not ctx.training or rate == 0.0:
        return {"out": x}, lambda d: ([d["out"]], [], None)
    keep = (ctx.rng.random(x.data.shape) >= rate).astype(x.data.dtype) / (1.0 - rate)
    return {"out": Act(x.data * keep, x.mask)}, lambda d: ([d["out"] * keep], [], None)
