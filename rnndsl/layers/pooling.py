"""Layers that turn a sequence (batch, steps, f) into a vector, over its steps.

    global_avg_pool (Keras GlobalAveragePooling1D)   y = sum_t m_t x_t / sum_t m_t
    global_max_pool (Keras GlobalMaxPooling1D)       y = max_t x_t
    flatten         (Keras Flatten)                  y[b, t f + j] = x[b, t, j]

m_t is the sequence's mask (1 without one): the average is over the real steps, as in
Keras; a row whose steps are all masked averages to 0 (Keras divides by zero there).
Keras's max pooling and Flatten read no mask: the max is over every step, padding
included, and Flatten needs a fixed number of steps. The gradient of the max goes to
the step that holds it (the first such step on ties).
"""

from __future__ import annotations

from ..types import TensorType
from .base import LayerSpec, Opt, register


class SequenceToVector(LayerSpec):
    """A float sequence in, a vector out; no weights."""

    options = {"name": Opt("string", None)}

    def out_features(self, node, x: TensorType, ctx) -> int | None:
        """The output's width, or None after reporting why there is none."""
        return x.features

    def infer(self, node, ins, ctx) -> None:
        (x,) = ins
        if x.is_tokens:
            ctx.error(node, f"{self.name} reads feature vectors, but its input is token ids",
                      "put embed(vocab, dim) in front of it")
            return
        if not x.seq:
            ctx.error(node, f"{self.name} needs a sequence, but its input is {x.describe()}", ctx.seq_hint(node, 0))
            return
        features = self.out_features(node, x, ctx)
        if features is not None:
            node.outputs["out"] = TensorType(False, features)


@register
class GlobalAvgPool(SequenceToVector):
    name = "global_avg_pool"
    aliases = ("global_average_pooling1d",)
    keras_class = "GlobalAveragePooling1D"
    keras_name = "global_average_pooling1d"


@register
class GlobalMaxPool(SequenceToVector):
    name = "global_max_pool"
    aliases = ("global_max_pooling1d",)
    keras_class = "GlobalMaxPooling1D"
    keras_name = "global_max_pooling1d"


@register
class Flatten(SequenceToVector):
    name = "flatten"
    keras_class = "Flatten"
    keras_name = "flatten"

    def out_features(self, node, x: TensorType, ctx) -> int | None:
        if x.steps is None:
            ctx.error(node, f"flatten needs a fixed number of steps, but its input is {x.describe()}",
                      "declare the input's steps, e.g. float[20, 8], or pool over them: global_avg_pool()")
            return None
        return x.steps * x.features
