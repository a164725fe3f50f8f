"""What concat and add check and combine at run time on every engine (math: layers/merge.py)."""

from __future__ import annotations

from ..errors import DataError


def combine_masks(masks):
    """Keras 3's merged mask: the OR of the inputs' (T, B) host masks, none when any input
    has none (Add and the other merges return no mask then; Concatenate one of all ones)."""
    if any(m is None for m in masks):
        return None
    out = masks[0]
    for m in masks[1:]:
        out = out | m
    return out


def same_steps(node, ins) -> None:
    """Sequences of `?` steps are checked at run time: the inputs must have as many steps
    (and rows) as each other."""
    shapes = [tuple(a.data.shape) for a in ins]
    if any(s[:-1] != shapes[0][:-1] for s in shapes[1:]):
        if all(len(s) == 3 for s in shapes) and len({s[1] for s in shapes}) == 1:
            got = ", ".join(str(s[0]) for s in shapes)
            raise DataError(f"layer {node.name!r} ({node.kind}) joins sequences of different lengths: "
                            f"{got} steps; its inputs must have the same number of steps")
        raise DataError(f"layer {node.name!r} ({node.kind}): its inputs have shapes "
                        + ", ".join(map(str, shapes)) + " (time-major); they must agree but for the features")
