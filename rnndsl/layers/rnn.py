"""rnn(cell(units), ...): a recurrent layer running a cell declared in the spec (Keras's RNN(cell)).

    cell mgu(units) {
      f  = sigmoid(x @ Wf + h @ Uf + bf)
      hc = tanh(x @ Wh + (f * h) @ Uh + bh)
      h  = (1 - f) * h + f * hc
    }
    output x | rnn(mgu(32), seq) | dense(1)

Per step the cell maps (inputs x_t, previous states s_{t-1}) to new states s_t
by its equations; the layer's output at step t is the first state, or the value
of the cell's `output = ...` equation (units wide), which at a padded step
repeats the previous step's (zeros before the first), as Keras's RNN. It takes
the options of the built-in recurrent layers (seq/return_sequences,
state/return_state, initial_state, go_backwards, stateful, dropout,
recurrent_dropout, zero_output_for_mask, trainable, name) and works inside
bidirectional(...). A cell with several inputs, `cell c(units) inputs(x1, x2)`,
is fed by several pipelines: `rnn(c(8), a, b)` or `a | rnn(c(8), b)`.

Weights: the cell's, in order of first appearance in its equations, named
`layer/W`; shapes (features, units) or (units, units) for matrices, (units,)
for vectors. Dropout follows Keras: one input mask per sequence on each input
(drawn for the inputs' features joined in order), one recurrent mask on the
first state, applied wherever the step reads it.
"""

from __future__ import annotations

from .cells import current_cells
from ..errors import did_you_mean
from ..types import StateType, TensorType
from ..lang import ast
from .base import REGISTRY, ArgError, Opt, coerce, register
from .recurrent import COMMON_OPTIONS, RecurrentSpec

RNN_OPTIONS = {"cell": Opt("layer", required=True, doc="mgu(32)"),
               **{k: v for k, v in COMMON_OPTIONS.items() if k not in ("units", "activation", "use_bias")}}


@register
class RNN(RecurrentSpec):
    name = "rnn"
    keras_class = "RNN"
    keras_name = "rnn"
    positional = ("cell",)
    options = RNN_OPTIONS
    fan_in = True          # the further inputs of a several-input cell: rnn(c(8), a, b)

    # --- arguments -----------------------------------------------------------------
    def resolve(self, call, report):
        def rephrase(pos, message, hint=None):
            if message.startswith("cell takes a layer"):
                message = message.replace("cell takes a layer such as lstm(64)",
                                          "rnn takes a cell such as mgu(32)")
                hint = hint or "declare the cell with `cell mgu(units) { ... }` and pass it as rnn(mgu(32))"
            report(pos, message, hint)

        # `rnn(mgu)`: a cell's name without its units is the cell, not an input pipeline
        cells = current_cells()
        args = [ast.Arg(a.name, ast.Call(a.value.parts[0], [], a.value.pos), a.pos)
                if a.name is None and isinstance(a.value, ast.Ref) and len(a.value.parts) == 1
                and a.value.parts[0] in cells and a.value.parts[0] not in self.flags else a
                for a in call.args]
        call = ast.Call(call.name, args, call.pos)
        opts, arg_pos, refs = super().resolve(call, rephrase)
        cell_call = opts.get("cell")
        opts["cell"] = None
        opts["units"] = None
        opts["use_bias"] = True
        if isinstance(cell_call, ast.Call):
            opts["cell"], opts["units"] = self.resolve_cell(cell_call, report)
            if cell_call.args:
                arg_pos["units"] = cell_call.args[0].value.pos
        return opts, arg_pos, refs

    def resolve_cell(self, call: ast.Call, report):
        cells = current_cells()
        if call.name not in cells:
            spec = REGISTRY.get(call.name)
            if isinstance(spec, RecurrentSpec):
                report(call.pos, f"{call.name} is a layer, not a cell",
                       f"use {call.name}(...) on its own, or declare a cell: `cell my{call.name}(units) {{ ... }}`")
            else:
                hint = did_you_mean(call.name, cells) or "declare it: `cell NAME(units) { h = ... }`"
                report(call.pos, f"unknown cell {call.name!r}", hint)
            return None, None
        cells.used.add(call.name)
        cell = cells[call.name]
        units = None
        if len(call.args) != 1 or call.args[0].name not in (None, "units"):
            pos = call.args[1].pos if len(call.args) > 1 else (call.args[0].pos if call.args else call.pos)
            report(pos, f"the cell {call.name} takes one argument, its units", f"e.g. rnn({call.name}(32))")
        else:
            try:
                units = coerce("units", Opt("units"), call.args[0].value)
            except ArgError as e:
                report(call.args[0].value.pos, e.message, e.hint)
        if cell is None or units is None:        # the definition's own errors are reported already
            return None, None
        return cell, units

    def display_name(self, node) -> str:
        cell = node.opts.get("cell")
        return f"RNN({cell.name})" if cell is not None else "RNN"

    # --- typing ----------------------------------------------------------------------
    def state_type(self, opts) -> StateType | None:
        cell = opts.get("cell")
        if cell is None:
            return None
        return StateType(cell.name, tuple((s, opts["units"]) for s in cell.states))

    def cell_weights(self, opts, features, prefix: str):
        cell = opts["cell"]
        feats = list(features) if isinstance(features, (list, tuple)) else [features]
        return cell.weight_specs(opts["units"], feats, prefix, opts.get("trainable", True))

    def check_input(self, node, x: TensorType, ctx) -> bool:
        if node.spec is not self:            # wrapped: bidirectional(rnn(...))
            inner = node.opts.get("layer")
            cell = inner.opts.get("cell") if inner is not None else None
            if cell is None:
                return False
            if len(cell.inputs) != 1:
                ctx.error(node, f"bidirectional wraps cells of one input; {cell.name} takes "
                                f"{len(cell.inputs)} ({', '.join(cell.inputs)})",
                          "run the two directions as two rnn layers (one with go_backwards=true) and concat them")
                return False
        return super().check_input(node, x, ctx)

    def infer(self, node, ins, ctx) -> None:
        o = node.opts
        cell = o.get("cell")
        if cell is None:
            return
        if len(ins) != len(cell.inputs):
            names = ", ".join(cell.inputs)
            hint = (f"feed one pipeline per input: rnn({cell.name}({o['units']}), a, b) or "
                    f"a | rnn({cell.name}({o['units']}), b)") if len(cell.inputs) > 1 else \
                f"pipe one sequence into it: x | rnn({cell.name}({o['units']}))"
            if not ins:
                ctx.error(node, f"rnn({cell.name}(...)) has no input", hint)
            else:
                ctx.error(node, f"the cell {cell.name} takes {len(cell.inputs)} input(s) ({names}), "
                                f"got {len(ins)}", hint)
            return
        for i, x in enumerate(ins):
            if x.is_tokens:
                ctx.error(node, f"rnn takes sequences of feature vectors, but its input {cell.inputs[i]} is "
                                f"{x.describe()}", "put embed(vocab, dim) in front of it to turn ids into vectors")
                return
            if not x.seq:
                ctx.error(node, f"rnn needs a sequence, but its input {cell.inputs[i]} is {x.describe()}",
                          ctx.seq_hint(node, i))
                return
        steps = {x.steps for x in ins if x.steps is not None}
        if len(steps) > 1:
            ctx.error(node, f"the inputs of rnn({cell.name}(...)) have different numbers of steps: "
                            f"{', '.join(str(x.steps) for x in ins)}")
            return
        u = o["units"]
        node.weights = self.cell_weights(o, [x.features for x in ins], node.name)
        seq_steps = next(iter(steps), None)
        masked = any(x.masked for x in ins)
        if o["return_sequences"]:
            node.outputs["out"] = TensorType(True, u, seq_steps, masked=masked)
        else:
            node.outputs["out"] = TensorType(False, u)
        node.state = self.state_type(o) if o["return_state"] else None
