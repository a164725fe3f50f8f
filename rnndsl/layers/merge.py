"""Fan-in: concat(a, b, ...) joins features [a, b]; add(a, b, ...) sums a + b + ...

Sequences must have the same number of steps; add needs equal feature sizes.
Masks combine as Keras 3 combines them: a step is kept when any input keeps it (OR);
an input without a mask keeps every step, so then no mask travels on.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..runtime.tensor import Act

from .base import LayerSpec, Opt, register


def combine_masks(masks):
    """Keras 3's merged mask: the OR of the inputs' (T, B) masks, none when any input has
    none (Add and the other merges return no mask then; Concatenate one of all ones)."""
    if any(m is None for m in masks):
        return None
    out = masks[0]
    for m in masks[1:]:
        out = out | m
    return out


def merged_mask(ins):
    return combine_masks([a.mask for a in ins])


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


class _Merge(LayerSpec):
    fan_in = True
    options = {"name": Opt("string", None)}

    def check(self, node, ins, ctx) -> bool:
        if len(ins) < 2:
            ctx.error(node, f"{self.name} joins at least two inputs, got {len(ins)}",
                      f"e.g. {self.name}(a, b) with names bound earlier")
            return False
        first = ins[0]
        for i, x in enumerate(ins[1:], 1):
            if x.is_tokens or first.is_tokens:
                ctx.error(node, f"{self.name} takes feature vectors, not token ids", None)
                return False
            if x.seq != first.seq:
                ctx.error(node, f"{self.name} mixes {first.describe()} and {x.describe()}",
                          "make both sequences (`seq`) or both vectors")
                return False
            if x.seq and None not in (x.steps, first.steps) and x.steps != first.steps:
                ctx.error(node, f"{self.name} needs the same number of steps, got {first.steps} and {x.steps}")
                return False
        return True


@register
class Concat(_Merge):
    name = "concat"
    aliases = ("concatenate",)
    keras_class = "Concatenate"
    keras_name = "concatenate"

    def infer(self, node, ins, ctx) -> None:
        if self.check(node, ins, ctx):
            node.outputs["out"] = ins[0].with_(features=sum(x.features for x in ins),
                                               masked=all(x.masked for x in ins))

    def forward(self, node, W, ins, ctx, init_state=None):
        same_steps(node, ins)
        sizes = np.cumsum([a.data.shape[-1] for a in ins])[:-1]
        y = np.concatenate([a.data for a in ins], axis=-1)
        return {"out": Act(y, merged_mask(ins))}, lambda d: (np.split(d["out"], sizes, axis=-1), [], None)


@register
class Add(_Merge):
    name = "add"
    keras_class = "Add"
    keras_name = "add"

    def infer(self, node, ins, ctx) -> None:
        if not self.check(node, ins, ctx):
            return
        sizes = [x.features for x in ins]
        if len(set(sizes)) != 1:
            ctx.error(node, f"add needs equal feature sizes, got {', '.join(map(str, sizes))}",
                      "use concat(...) to join different sizes, or a dense(...) to match them")
            return
        node.outputs["out"] = ins[0].with_(masked=all(x.masked for x in ins))

    def forward(self, node, W, ins, ctx, init_state=None):
        same_steps(node, ins)
        y = ins[0].data.copy()
        for a in ins[1:]:
            y += a.data
        return {"out": Act(y, merged_mask(ins))}, lambda d: ([d["out"]] * len(ins), [], None)
