"""What attention and additive_attention check and draw on the host, on every engine
(math: layers/attention.py): the shapes at run time, which scores are kept, the dropout
of the attention weights."""

from __future__ import annotations

import numpy as np

from ..errors import DataError

# how far a masked score is pushed down before the softmax (Keras's 1e9; 65504 in float16)
MASKED_SHIFT = 1.0e9


def check_shapes(node, shapes) -> None:
    """shapes: the time-major (T, B, F) shapes of query, value (and key). The batch sizes
    must agree, and the key must have as many steps as the value."""
    if len({s[1] for s in shapes}) != 1:
        raise DataError(f"layer {node.name!r} ({node.kind}): its query, value (and key) have batch sizes "
                        + ", ".join(str(s[1]) for s in shapes) + "; they must be the same")
    if len(shapes) == 3 and shapes[2][0] != shapes[1][0]:
        raise DataError(f"layer {node.name!r} ({node.kind}): the key has {shapes[2][0]} steps and the value "
                        f"{shapes[1][0]}; they must have as many")


def score_keep(node, value_mask, Tq: int, Tv: int, B: int):
    """(B, Tq, Tv) uint8, 1 where score (i, j) counts: value step j is real (value_mask,
    (Tv, B) time-major) and, with use_causal_mask, j <= i. None when every score counts."""
    keep = None
    if value_mask is not None:
        keep = np.broadcast_to(value_mask.T[:, None, :] != 0, (B, Tq, Tv))
    if node.opts["use_causal_mask"]:
        causal = np.arange(Tv)[None, :] <= np.arange(Tq)[:, None]
        keep = causal[None] if keep is None else keep & causal[None]
        keep = np.broadcast_to(keep, (B, Tq, Tv))
    return None if keep is None else np.ascontiguousarray(keep, dtype=np.uint8)


def dropout_keep(node, ctx, shape, dtype):
    """m / (1 - rate) for the attention weights (B, Tq, Tv) in training, from the run's
    generator (the same numbers on both engines); None outside training or at rate 0."""
    rate = node.opts["dropout"]
    if not ctx.training or rate == 0.0:
        return None
    return ((ctx.rng.random(shape) >= rate) / (1.0 - rate)).astype(dtype)
