"""Masking (Keras's Masking layer): a step is padding when all its features equal mask_value.

    m_t = any_f(x_t,f != mask_value)          (batch, steps), 1 for a real step
    y_t = x_t * m_t                            padded steps read as zeros

The mask travels with the sequence to the layers that read masks (recurrent layers skip a
masked step and carry their state; losses and metrics weight it 0), through per-step
layers (dense, dropout, batchnorm) as in Keras. mask_value defaults to 0.0. A mask that
reached the layer is replaced by its own, as in Keras.
"""

from __future__ import annotations

from .base import LayerSpec, Opt, register


@register
class Masking(LayerSpec):
    name = "masking"
    per_step = True
    keras_class = "Masking"
    keras_name = "masking"
    positional = ("mask_value",)
    options = {"mask_value": Opt("float", 0.0, doc="0.0"), "name": Opt("string", None)}

    def infer(self, node, ins, ctx) -> None:
        (x,) = ins
        if x.is_tokens:
            ctx.error(node, "masking reads feature vectors, but its input is token ids",
                      "for token ids write embed(vocab, dim, mask_zero=true): id 0 is then padding")
            return
        if not x.seq:
            ctx.error(node, f"masking needs a sequence, but its input is {x.describe()}", ctx.seq_hint(node, 0))
            return
        node.outputs["out"] = x.with_(masked=True)
