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

import numpy as np

from ..errors import Pos, did_you_mean
from ..types import StateType, TensorType
from ..kernels.cpu import buffers
from ..runtime.tensor import Act
from .base import REGISTRY, LayerSpec, Opt, register
from .gru import GRU
from .lstm import LSTM
from .recurrent import FLAGS, RecurrentSpec, start_state
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

    # --- run time ------------------------------------------------------------------------
    def initial_states(self, node, ctx, init_state, batch: int):
        """(the forward half's initial states, the backward half's, whether they came through
        an initial_state edge): the edge's states or a stateful layer's carried ones (see
        start_state), split in two; None, None without either. Shared by the CPU and CUDA
        engines."""
        inner = self.inner(node)
        init, from_edge = start_state(node, ctx, init_state, batch, inner.opts["stateful"])
        if init is None:
            return None, None, from_edge
        n = len(inner.spec.state_type(inner.opts).parts)
        return tuple(init[:n]), tuple(init[n:]), from_edge

    def forward(self, node, W, ins, ctx, init_state=None):
        inner = self.inner(node)
        spec, o = inner.spec, inner.opts
        x = ins[0]
        T, B, _ = x.shape
        half = len(W) // 2
        n_states = len(spec.state_type(o).parts)
        init_f, init_b, from_edge = self.initial_states(node, ctx, init_state, B)
        seq = o["return_sequences"]
        # Keras sets both halves' zero_output_for_mask to return_sequences, whatever the
        # wrapped layer says: without sequences a padded row's halves are its last valid outputs
        zero_out = seq
        fwd_backwards = o["go_backwards"]
        need_dx = ctx.needs_grad(node.inputs[0])
        out_f, fin_f, bp_f = spec.run_cell(o, W[:half], x, ctx, init_f, fwd_backwards, zero_out, need_dx=need_dx)
        out_b, fin_b, bp_b = spec.run_cell(o, W[half:], x, ctx, init_b, not fwd_backwards, zero_out, need_dx=need_dx)
        final = fin_f + fin_b
        if o["stateful"]:
            ctx.keep_state(node, final)
        # the backward half ran in reverse; put its sequence back in time order
        yf, yb = (out_f, out_b[::-1]) if seq else (out_f[-1], out_b[-1])
        mask = x.mask if seq else None
        mode = node.opts["merge_mode"]
        if mode == "concat":
            merged = {"out": np.concatenate([yf, yb], axis=-1)}
        elif mode == "sum":
            merged = {"out": yf + yb}
        elif mode == "mul":
            merged = {"out": yf * yb}
        elif mode == "ave":
            merged = {"out": (yf + yb) * yf.dtype.type(0.5)}
        else:
            merged = {"forward": yf, "backward": np.ascontiguousarray(yb)}
        outputs = {k: Act(np.ascontiguousarray(v), mask) for k, v in merged.items()}
        if o["return_state"]:
            outputs["state"] = final
        u = o["units"]

        def backprop(d):
            dyf = dyb = None
            g = d.get("out")
            if g is not None:                       # undo the merge
                if mode == "concat":
                    dyf, dyb = g[..., :u], g[..., u:]
                elif mode == "sum":
                    dyf = dyb = g
                elif mode == "mul":
                    dyf, dyb = g * yb, g * yf
                else:
                    dyf = dyb = g * g.dtype.type(0.5)
            else:
                dyf, dyb = d.get("forward"), d.get("backward")
            dout_f = buffers.zeros((T,) + out_f.shape[1:], out_f.dtype)
            dout_b = buffers.zeros((T,) + out_b.shape[1:], out_b.dtype)
            dstate = list(d.get("state") or (np.zeros_like(s) for s in final))
            if T == 0:
                # zero steps: the last outputs were the initial h's (see zero_steps)
                if not seq and dyf is not None:
                    dstate[0] = dstate[0] + dyf
                if not seq and dyb is not None:
                    dstate[n_states] = dstate[n_states] + dyb
            elif seq:
                if dyf is not None:
                    dout_f[...] = dyf
                if dyb is not None:
                    dout_b[...] = dyb[::-1]          # undo the re-reversal
            else:
                if dyf is not None:
                    dout_f[-1] = dyf
                if dyb is not None:
                    dout_b[-1] = dyb
            dX_f, g_f, dinit_f = bp_f(dout_f, tuple(dstate[:n_states]))
            dX_b, g_b, dinit_b = bp_b(dout_b, tuple(dstate[n_states:]))
            dX = None if dX_f is None else dX_f + dX_b
            return [dX], g_f + g_b, (tuple(dinit_f) + tuple(dinit_b) if from_edge else None)

        return outputs, backprop


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
