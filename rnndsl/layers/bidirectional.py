"""Bidirectional: one recurrent layer reads the sequence forwards, a copy backwards.

    y_fwd = layer(x)          y_bwd = reverse(layer(reverse(x)))
    merge_mode: concat [y_fwd, y_bwd] | sum y_fwd + y_bwd | mul y_fwd * y_bwd
                | ave (y_fwd + y_bwd) / 2 | none (two outputs: .forward and .backward)

Weights: the forward layer's, then the backward layer's. State port: the
forward layer's states, then the backward layer's (Keras's order).
`backward_layer=gru(64, go_backwards=true)` gives the backward half a layer of its
own, as Keras's `backward_layer`: any recurrent kind, with go_backwards unlike the
forward layer's and the same return_sequences, return_state and stateful; its
weights are named after it (bidirectional/gru/kernel, ...). Without it the backward
half is a copy of the forward layer's configuration.
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
    n_weights: int = 0         # how many of the Bidirectional's weights are this half's (set by infer)

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
               "initial_state": Opt("state", None), "backward_layer": Opt("layer", None)}

    def resolve(self, call, report):
        opts, arg_pos, refs = super().resolve(call, report)
        for key in ("layer", "backward_layer"):
            inner_call = opts.pop(key, None)
            opts[key] = None
            if inner_call is None:
                continue
            spec = REGISTRY.get(inner_call.name)
            if not isinstance(spec, RecurrentSpec):
                known = [n for n, s in REGISTRY.items() if isinstance(s, RecurrentSpec)]
                hint = did_you_mean(inner_call.name, known) or "wrap lstm(...), gru(...) or simplernn(...)"
                report(inner_call.pos, f"bidirectional wraps a recurrent layer, not {inner_call.name!r}", hint)
                continue
            iopts, ipos, _ = spec.resolve(inner_call, report)
            if key == "layer":
                self._hoist(opts, arg_pos, iopts, ipos)
            elif iopts.get("initial_state") is not None:
                report(ipos["initial_state"], "the backward layer takes its initial state from bidirectional's",
                       "give initial_state=... to bidirectional(...): its second half goes to the backward layer")
            iopts["initial_state"] = None
            opts[key] = Inner(spec, iopts, ipos)
        return opts, arg_pos, refs

    @staticmethod
    def _hoist(opts, arg_pos, iopts, ipos):
        # Keras passes initial_state to the Bidirectional call; accept it on the inner layer too.
        if iopts.get("initial_state") is not None and opts.get("initial_state") is None:
            opts["initial_state"] = iopts["initial_state"]
            arg_pos["initial_state"] = ipos["initial_state"]
        iopts["initial_state"] = None

    def inner(self, node) -> Inner | None:
        """The forward half's layer."""
        return node.opts.get("layer")

    def backward(self, node) -> Inner | None:
        """The backward half's layer: backward_layer's, else the forward layer's configuration."""
        return node.opts.get("backward_layer") or self.inner(node)

    def display_name(self, node) -> str:
        inner, back = self.inner(node), self.backward(node)
        if inner is None:
            return "Bidirectional"
        if back is not inner and back.spec.keras_class != inner.spec.keras_class:
            return f"Bidirectional({inner.spec.keras_class}, {back.spec.keras_class})"
        return f"Bidirectional({inner.spec.keras_class})"

    def state_type(self, node) -> StateType | None:
        inner, back = self.inner(node), self.backward(node)
        if inner is None or back is None:
            return None
        fwd, bwd = inner.spec.state_type(inner.opts), back.spec.state_type(back.opts)
        parts = tuple((f"forward_{n}", u) for n, u in fwd.parts) + tuple((f"backward_{n}", u) for n, u in bwd.parts)
        kind = inner.spec.name if back.spec.name == inner.spec.name else f"{inner.spec.name}_{back.spec.name}"
        return StateType(f"bidirectional_{kind}", parts)

    def takes_state(self, node) -> StateType | None:
        return self.state_type(node)

    def infer(self, node, ins, ctx) -> None:
        inner, back = self.inner(node), self.backward(node)
        (x,) = ins
        if inner is None or back is None or not inner.spec.check_input(node, x, ctx):
            return
        if back is not inner and not self._check_backward(node, inner, back, ctx):
            return
        o = inner.opts
        u, ub = o["units"], back.opts["units"]
        trainable = node.opts.get("trainable", True)
        fw = inner.spec.cell_weights({**o, "trainable": trainable and o.get("trainable", True)}, x.features,
                                     f"{node.name}/forward_{inner.spec.keras_name}")
        bname = back.opts.get("name") or back.spec.keras_name
        bw = back.spec.cell_weights({**back.opts, "trainable": trainable and back.opts.get("trainable", True)},
                                    x.features, f"{node.name}/backward_{bname}" if back is inner else f"{node.name}/{bname}")
        inner.n_weights = len(fw)
        node.weights = fw + bw
        mode = node.opts["merge_mode"]
        width = u + ub if mode == "concat" else u
        if o["return_sequences"]:
            one, other = (TensorType(True, n, x.steps, masked=x.masked) for n in (u, ub))
            merged = TensorType(True, width, x.steps, masked=x.masked)
        else:
            one, other, merged = TensorType(False, u), TensorType(False, ub), TensorType(False, width)
        if mode == "none":
            node.outputs["forward"] = one
            node.outputs["backward"] = other
        else:
            node.outputs["out"] = merged
        node.state = self.state_type(node) if o["return_state"] else None

    @staticmethod
    def _check_backward(node, inner, back, ctx) -> bool:
        """Keras's rules for a backward_layer: the other direction, the same outputs."""
        problems = []
        if back.opts["go_backwards"] == inner.opts["go_backwards"]:
            problems.append(("the backward layer must read the other way: give it go_backwards="
                             f"{'false' if inner.opts['go_backwards'] else 'true'}",
                             "as in Keras's Bidirectional, the two layers' go_backwards differ"))
        for key in ("return_sequences", "return_state", "stateful"):
            if back.opts[key] != inner.opts[key]:
                problems.append((f"the backward layer's {key} is {str(back.opts[key]).lower()}, the forward "
                                 f"layer's {str(inner.opts[key]).lower()}", f"give both layers the same {key}"))
        mode = node.opts["merge_mode"]
        if mode in ("sum", "mul", "ave") and back.opts["units"] != inner.opts["units"]:
            problems.append((f"merge_mode={mode} needs both layers' units equal, got {inner.opts['units']} "
                             f"and {back.opts['units']}", "use merge_mode=concat, or equal units"))
        for message, hint in problems:
            ctx.error(node, message, hint, at="backward_layer")
        return not problems


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
        outer["backward_layer"] = None
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
