"""Fan-in: concat(a, b, ...) joins features [a, b]; add(a, b, ...) sums a + b + ...

Sequences must have the same number of steps; add needs equal feature sizes.
Masks combine as Keras 3 combines them: a step is kept when any input keeps it (OR);
an input without a mask keeps every step, so then no mask travels on.
"""

from __future__ import annotations

from .base import LayerSpec, Opt, register


class _Merge(LayerSpec):
    fan_in = True
    options = {"name": Opt("string", None)}

    def stepwise(self, node, stepped: list[bool]) -> bool:
        return all(stepped)         # a sequence that does not step has other steps than the rest

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
