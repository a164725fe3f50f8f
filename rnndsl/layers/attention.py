"""Attention over a sequence: Keras's Attention (Luong, dot-product) and AdditiveAttention
(Bahdanau), with their masks.

    attention(query, value [, key])             key = value when not given
    additive_attention(query, value [, key])

query q (batch, Tq, d), key k (batch, Tv, d), value v (batch, Tv, dv); per sample:

    scores   S_ij = s * q_i . k_j                              attention, score_mode="dot"
             S_ij = c * sum_f tanh(s * (q_if + k_jf))          attention, score_mode="concat"
             S_ij = sum_f w_f tanh(q_if + k_jf)                additive_attention
    masked   S_ij - 1e9 where value step j is padding, or j > i with use_causal_mask
    weights  A_i = softmax_j(S_i), then dropout in training: A * m / (1 - rate)
    context  y_i = sum_j A_ij v_j, and y_i = 0 where query step i is padding

s is the scalar weight `scale` (use_scale, init 1; 1 without it), c the scalar
`concat_score_weight` (score_mode="concat", init 1), w the vector `scale` of d
(additive_attention's use_scale, on by default, glorot_uniform). As in Keras, a padded
value step is pushed down by 1e9 rather than removed: a row whose every value step is
padding weighs them alike (in float32, where 1e9 swallows the scores).

The output is the context sequence (batch, Tq, dv), carrying the query's mask; with
return_attention_scores=true the port `name.scores` is A (batch, Tq, Tv, after dropout),
with no mask. Gradients flow to the query, key and value and to the weights.
"""

from __future__ import annotations

from ..types import TensorType, WeightSpec
from .base import LayerSpec, Opt, register

INPUT_ROLES = ("query", "value", "key")


class _Attention(LayerSpec):
    fan_in = True
    scores_port = "scores"

    def describe_inputs(self, node, ins, ctx) -> bool:
        n = len(ins)
        if not 2 <= n <= 3:
            ctx.error(node, f"{self.name} takes a query and a value (and a key), got {n} input(s)",
                      f"e.g. {self.name}(dec, enc): dec attends over enc")
            return False
        for k, x in enumerate(ins):
            role, at = INPUT_ROLES[k], f"in:{k}"
            if x.is_tokens:
                ctx.error(node, f"the {role} of {self.name} is token ids; it reads feature sequences",
                          "put embed(vocab, dim) in front of it", at=at)
                return False
            if not x.seq:
                ctx.error(node, f"the {role} of {self.name} must be a sequence, but it is {x.describe()}",
                          ctx.seq_hint(node, k), at=at)
                return False
        q, v = ins[0], ins[1]
        key = ins[2] if n == 3 else v
        if q.features != key.features:
            which = "key" if n == 3 else "value"
            ctx.error(node, f"{self.name} compares query and {which} feature by feature, but the query has "
                            f"{q.features} features and the {which} {key.features}",
                      "make them the same width, e.g. with dense(...) in front of one", at=f"in:{1 if n == 2 else 2}")
            return False
        if n == 3 and None not in (v.steps, key.steps) and v.steps != key.steps:
            ctx.error(node, f"the key of {self.name} needs as many steps as the value, got {key.steps} "
                            f"and {v.steps}", None, at="in:2")
            return False
        if None not in (q.steps, v.steps):
            cube = self.score_mode(node.opts) != "dot"         # tanh(q_i + k_j) for every i, j, feature
            what = "tanh(query + key) terms" if cube else "scores"
            if not ctx.fits(node, q.steps * v.steps * (q.features if cube else 1), what):
                return False
        if node.opts["return_attention_scores"] and v.steps is None:
            ctx.error(node, "the scores' width is the value's number of steps, which is `?` here",
                      "declare the value's steps, e.g. int[12] or float[12, 8]", at="return_attention_scores")
            return False
        return True

    def infer(self, node, ins, ctx) -> None:
        if not self.describe_inputs(node, ins, ctx):
            return
        q, v = ins[0], ins[1]
        node.weights = self.weight_specs(node, q.features)
        node.outputs["out"] = TensorType(True, v.features, q.steps, masked=q.masked)
        if node.opts["return_attention_scores"]:
            node.outputs[self.scores_port] = TensorType(True, v.steps, q.steps)

    def stepwise(self, node, stepped: list[bool]) -> bool:
        # each query step attends over the whole value: the query may step, the value and
        # key may not; a causal mask ties query step i to value step i
        return stepped[0] and not any(stepped[1:]) and not node.opts["use_causal_mask"]

    def weight_specs(self, node, dim: int) -> list[WeightSpec]:
        raise NotImplementedError

    def score_mode(self, opts) -> str:
        """"dot", "concat" or "additive": how the scores are made."""
        raise NotImplementedError

    def named_weights(self, opts, W) -> tuple:
        """(s, c, w) from the node's weights W in order: the scalar scale, the concat score
        weight, the additive scale vector; None for each the layer does not have."""
        raise NotImplementedError


COMMON = {
    "dropout": Opt("rate", 0.0),
    "seed": Opt("int0", None),
    "return_attention_scores": Opt("bool", False),
    "use_causal_mask": Opt("bool", False),
    "trainable": Opt("bool", True),
    "name": Opt("string", None),
}


@register
class Attention(_Attention):
    name = "attention"
    keras_class = "Attention"
    keras_name = "attention"
    options = {"use_scale": Opt("bool", False), "score_mode": Opt("choice", "dot", ("dot", "concat")), **COMMON}

    def weight_specs(self, node, dim):
        o, out = node.opts, []
        if o["use_scale"]:
            out.append(WeightSpec(f"{node.name}/scale", (), "ones", o["trainable"]))
        if o["score_mode"] == "concat":
            out.append(WeightSpec(f"{node.name}/concat_score_weight", (), "ones", o["trainable"]))
        return out

    def score_mode(self, opts):
        return opts["score_mode"]

    def named_weights(self, opts, W):
        W = list(W)
        s = W.pop(0) if opts["use_scale"] else None
        c = W.pop(0) if opts["score_mode"] == "concat" else None
        return s, c, None


@register
class AdditiveAttention(_Attention):
    name = "additive_attention"
    keras_class = "AdditiveAttention"
    keras_name = "additive_attention"
    options = {"use_scale": Opt("bool", True), **COMMON}

    def weight_specs(self, node, dim):
        o = node.opts
        return [WeightSpec(f"{node.name}/scale", (dim,), "glorot_uniform", o["trainable"])] if o["use_scale"] else []

    def score_mode(self, opts):
        return "additive"

    def named_weights(self, opts, W):
        return None, None, (W[0] if opts["use_scale"] else None)
