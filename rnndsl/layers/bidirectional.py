"""Bidirectional: one recurrent layer reads the sequence forwards, a copy backwards.

    y_fwd = layer(x)          y_bwd = reverse(layer(reverse(x)))
    merge_mode: concat [y_fwd, y_bwd] | sum y_fwd + y_bwd | mul y_fwd * y_bwd
                | ave (y_fwd + y_bwd) / 2 | none (two outputs: .forward and .backward)

Weights: the forward layer's, then the backward layer's. State port: the
forward layer's states, then the backward layer's (Keras's order).
`bilstm(64, ...)`, `bigru(...)` and `birnn(...)` are short for
`bidirectional(lstm(64, ...))` and so on, with merge_mode among their options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Pos, did_you_mean
from ..types import StateType, TensorType
from .base import REGISTRY, LayerSpec, Opt, register
from .gru import GRU
from .lstm import LSTM
from .recurrent import FLAGS, RecurrentSpec
from .simplernn import SimpleRNN

MERGE_MODES = ("concat", "sum", "mul", "ave", "none")
OUTER = {
    "merge_mode": Opt("choice", "concat", MERGE_MODES),
    "trainable": Opt("bool", True),
    "name": Opt("string", None),
}


@dataclass
class Inner:
    """The wrapped recurrent layer: its spec and resolved options."""

    spec: RecurrentSpec
    opts: dict[str, Any]
    arg_pos: dict[str, Pos]

    @property
    def kind(self) -> str:
        """The layer kind, as Node.kind."""
        return self.spec.name


@register
class Bidirectional(LayerSpec):
    name = "bidirectional"
    keras_class = "Bidirectional"
    keras_name = "bidirectional"
    recurrent = True
    positional = ("layer",)
    options = {"layer": Opt("layer", required=True, doc="lstm(64)"), **OUTER,
               "initial_state": Opt("state", None)}

    def resolve(self, call, report):
        opts, arg_pos, refs = super().resolve(call, report)
        inner_call = opts.pop("layer", None)
        opts["layer"] = None
        if inner_call is not None:
            spec = REGISTRY.get(inner_call.name)
            if not isinstance(spec, RecurrentSpec):
                known = [n for n, s in REGISTRY.items() if isinstance(s, RecurrentSpec)]
                hint = did_you_mean(inner_call.name, known) or "wrap lstm(...), gru(...) or simplernn(...)"
                report(inner_call.pos, f"bidirectional wraps a recurrent layer, not {inner_call.name!r}", hint)
            else:
                iopts, ipos, _ = spec.resolve(inner_call, report)
                self._hoist(opts, arg_pos, iopts, ipos)
                opts["layer"] = Inner(spec, iopts, ipos)
        return opts, arg_pos, refs

    @staticmethod
    def _hoist(opts, arg_pos, iopts, ipos):
        # Keras passes initial_state to the Bidirectional call; accept it on the inner layer too.
        if iopts.get("initial_state") is not None and opts.get("initial_state") is None:
            opts["initial_state"] = iopts["initial_state"]
            arg_pos["initial_state"] = ipos["initial_state"]
        iopts["initial_state"] = None

    def inner(self, node) -> Inner | None:
        return node.opts.get("layer")

    def display_name(self, node) -> str:
        inner = self.inner(node)
        return f"Bidirectional({inner.spec.keras_class})" if inner else "Bidirectional"

    def state_type(self, node) -> StateType | None:
        inner = self.inner(node)
        if inner is None:
            return None
        one = inner.spec.state_type(inner.opts)
        parts = tuple((f"forward_{n}", u) for n, u in one.parts) + tuple((f"backward_{n}", u) for n, u in one.parts)
        return StateType(f"bidirectional_{inner.spec.name}", parts)

    def takes_state(self, node) -> StateType | None:
        return self.state_type(node)

    def infer(self, node, ins, ctx) -> None:
        inner = self.inner(node)
        (x,) = ins
        if inner is None or not inner.spec.check_input(node, x, ctx):
            return
        o = inner.opts
        u = o["units"]
        trainable = node.opts.get("trainable", True) and o.get("trainable", True)
        wopts = {**o, "trainable": trainable}
        node.weights = (inner.spec.cell_weights(wopts, x.features, f"{node.name}/forward_{inner.spec.keras_name}")
                        + inner.spec.cell_weights(wopts, x.features, f"{node.name}/backward_{inner.spec.keras_name}"))
        mode = node.opts["merge_mode"]
        width = 2 * u if mode == "concat" else u
        if o["return_sequences"]:
            one = TensorType(True, u, x.steps, masked=x.masked)
            merged = TensorType(True, width, x.steps, masked=x.masked)
        else:
            one, merged = TensorType(False, u), TensorType(False, width)
        if mode == "none":
            node.outputs["forward"] = one
            node.outputs["backward"] = one
        else:
            node.outputs["out"] = merged
        node.state = self.state_type(node) if o["return_state"] else None


class _BiShort(Bidirectional):
    """bilstm(64, seq, merge_mode="sum") == bidirectional(lstm(64, seq), merge_mode="sum")."""

    cell: type[RecurrentSpec]
    flags = FLAGS
    positional = ("units",)

    def __init__(self):
        self.cell_spec = REGISTRY[self.cell.name] if self.cell.name in REGISTRY else self.cell()
        self.options = {**self.cell_spec.options, **OUTER}

    def resolve(self, call, report):
        opts, arg_pos, refs = LayerSpec.resolve(self, call, report)
        outer = {k: opts.pop(k) for k in OUTER}
        outer_pos = {k: arg_pos.pop(k) for k in OUTER if k in arg_pos}
        trainable = outer["trainable"]
        opts["trainable"] = trainable
        outer["initial_state"] = None
        self._hoist(outer, outer_pos, opts, arg_pos)
        outer["layer"] = Inner(self.cell_spec, opts, arg_pos)
        return outer, {**arg_pos, **outer_pos}, refs


@register
class BiLSTM(_BiShort):
    name = "bilstm"
    cell = LSTM


@register
class BiGRU(_BiShort):
    name = "bigru"
    cell = GRU


@register
class BiRNN(_BiShort):
    name = "birnn"
    aliases = ("bisimplernn",)
    cell = SimpleRNN
