"""rnn(cell(...)) on the CPU: a cell declared in the spec, run by its generated kernels
(runtime/cells.py calls them; the math is in layers/rnn.py). Several inputs travel joined
along the features, their masks ANDed; run_cell splits them again."""

from __future__ import annotations

import numpy as np

from ...cells import compiler
from ...errors import DataError
from ...kernels.cpu import paths
from .. import cells as cell_run
from ..recurrent import dropout_masks, layer_outputs, start_state
from ..tensor import Act
from .ops import OPS
from .recurrent import Recurrent


class RNN(Recurrent):
    name = "rnn"

    def forward(self, node, W, ins, ctx, init_state=None):
        if len(ins) == 1:
            return super().forward(node, W, ins, ctx, init_state)
        T = ins[0].data.shape[0]
        for a, name in zip(ins, node.opts["cell"].inputs):
            if a.data.shape[0] != T:
                raise DataError(f"layer {node.name!r}: input {name} has {a.data.shape[0]} steps, "
                                f"the first input {T}")
        widths = [a.data.shape[2] for a in ins]
        mask = None
        for m in (a.mask for a in ins if a.mask is not None):
            mask = m if mask is None else (mask & m)
        x = Act(np.concatenate([a.data for a in ins], axis=2), mask)
        o = node.opts
        init, from_edge = start_state(node, ctx, init_state, x.shape[1], o["stateful"])
        out, final, backprop_cell = self.run_cell(o, W, x, ctx, init, o["go_backwards"], o["zero_output_for_mask"])
        cuts = np.cumsum(widths)[:-1]

        def cell_backprop(dout, dfinal):
            dX, grads, dinit = backprop_cell(dout, dfinal)
            return [np.ascontiguousarray(p) for p in np.split(dX, cuts, axis=2)], grads, dinit

        return layer_outputs(OPS, node, ctx, T, out, final, x.mask, cell_backprop, from_edge)

    @staticmethod
    def input_widths(cell, W, F: int) -> list[int]:
        plan = compiler.plan(cell)
        if len(cell.inputs) == 1:
            return [F]
        return [W[plan.input_weight[k]].shape[0] for k in range(len(cell.inputs))]

    @staticmethod
    def cell_table_input(cell, opts, x: Act, ctx, sole_reader: bool):
        """(E, ids) when the one input is an embedding's rows E[ids] best read through E's
        projection (as Recurrent.table_input): the cell uses its input only in products
        hoisted out of the loop, this layer is the rows' sole reader, no input dropout runs,
        and V <= T*B / 3; else None (and on the plain route)."""
        plan = compiler.plan(cell)
        if paths.plain() or not (sole_reader and x.gathered is not None and len(cell.inputs) == 1 and plan.hoisted
                and not plan.loop_inputs and not (ctx.training and opts["dropout"] > 0)):
            return None
        E, ids = x.gathered
        return (E, ids) if 3 * E.shape[0] <= ids.size else None

    def run_cell(self, opts, W, x: Act, ctx, init, backwards: bool, zero_out: bool, need_dx: bool = True,
                 sole_reader: bool = False, ready: list | None = None):
        """Run the cell over x: (out (T, B, u) in processing order, final states, backprop).
        The input gradient is always computed (need_dx, sole_reader and ready are accepted for
        the common signature): the generated backward produces it with the weight gradients;
        no call is made ready to run again."""
        cell = opts["cell"]
        if x.shape[0] == 0:
            return self.zero_steps(opts, W, x, init)
        T, B, F = x.shape
        u = opts["units"]
        table = self.cell_table_input(cell, opts, x, ctx, sole_reader)
        if table is not None:
            dtype = table[0].dtype
            dmask, rmask = dropout_masks(opts, ctx, B, F, u, dtype)     # dmask: None
            Xs = [None]
        else:
            X = x.data
            dtype = X.dtype
            dmask, rmask = dropout_masks(opts, ctx, B, F, u, dtype)
            if dmask is not None:
                X = X * dmask
            widths = self.input_widths(cell, W, F)
            cuts = np.cumsum([0] + widths)
            Xs = [X if len(widths) == 1 else X[:, :, cuts[k]:cuts[k + 1]] for k in range(len(widths))]
        if init is None:
            init = tuple(np.zeros((B, u), dtype) for _ in cell.states)
        # inference keeps nothing for backward
        out, final, tape = self.kernel_forward(Xs, W, init, x.mask, rmask, opts, backwards, zero_out,
                                               keep=ctx.training, table=table,
                                               derive=None if ctx.training else ctx.derived)

        def backprop(dout, dfinal):
            dfinal = tuple(dfinal[:len(cell.states)]) + (None,) * (len(cell.states) - len(dfinal))
            dXs, grads, dinit = self.kernel_backward(tape, dout, dfinal)
            dX = dXs[0] if len(dXs) == 1 else np.concatenate(dXs, axis=2)
            if dmask is not None:
                dX = dX * dmask                              # undo X = x * dmask
            return dX, grads, dinit

        return out, final, backprop

    # The generated kernels behind Recurrent's two calls. Unlike the built-in cells they
    # take the inputs themselves and all weights: the products x_k @ W are hoisted in
    # rnndsl.runtime.cells, which knows which of the cell's weights multiply which input.
    def kernel_forward(self, Xs, W, init, mask, rmask, opts, backwards, zero_out, keep=True, table=None,
                       derive=None):
        """(out, final states, tape) from the cell's generated cell_forward."""
        tape_cell = opts["cell"]
        out, final, tape = cell_run.forward(tape_cell, Xs, W, init, mask, rmask, backwards, zero_out, keep,
                                            table=table, derive=derive)
        tape.cell = tape_cell
        return out, final, tape

    def kernel_backward(self, tape, dout, dfinal):
        """(dXs, weight gradients, initial-state gradients) from the generated cell_backward."""
        return cell_run.backward(tape.cell, tape, dout, dfinal)


CELL = RNN()
