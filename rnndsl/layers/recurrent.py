"""What SimpleRNN, LSTM and GRU share: options, shape rule, state port, weights.

A recurrent layer reads a sequence x (batch, steps, features) and runs a cell
over the steps, h_t = cell(x_t, h_{t-1}). It returns the last output
(batch, units), or every output (batch, steps, units) with `seq`
(return_sequences), and its final state on the `.state` port with `state`
(return_state). Its weights are the input kernel W (features, G*units), the
recurrent kernel U (units, G*units) and a bias, G being the number of gates.
"""

from __future__ import annotations

import numpy as np

from ..types import WeightSpec
from ..kernels.cpu import buffers, paths
from ..kernels.cpu.parallel import column_sums, matmul
from ..runtime.tensor import Act, TableGrad, flat
from ..types import StateType, TensorType
from .base import RECURRENT_ACTIVATIONS, LayerSpec, Opt

COMMON_OPTIONS = {
    "units": Opt("units", required=True, doc="64"),
    "activation": Opt("activation", "tanh", RECURRENT_ACTIVATIONS),
    "use_bias": Opt("bool", True),
    "dropout": Opt("rate", 0.0),
    "recurrent_dropout": Opt("rate", 0.0),
    "go_backwards": Opt("bool", False),
    "stateful": Opt("bool", False),
    "return_sequences": Opt("bool", False),
    "return_state": Opt("bool", False),
    "initial_state": Opt("state", None),
    "zero_output_for_mask": Opt("bool", False),
    "trainable": Opt("bool", True),
    "name": Opt("string", None),
}
GATED_OPTIONS = {**COMMON_OPTIONS, "recurrent_activation": Opt("activation", "sigmoid", RECURRENT_ACTIVATIONS)}
FLAGS = {"seq": ("return_sequences", True), "state": ("return_state", True)}

# Up to this many input features the kernels project each step's input themselves
# (x_t @ W + b, one small packed product a step): no (T, B, G) array and no pass of its
# own for the bias. Against one large product before the time loop this is faster at few
# features and even at 512 (bench/README.md, "Measurements behind the code"). Wider inputs
# keep the one large product.
PER_STEP_MAX_FEATURES = 512
# rows (steps x batch) per chunk when inference runs a last-output-only layer chunk by chunk
CHUNK_ROWS = 4096


_ZEROS: dict = {}


def _read_only_zeros(shape, dtype) -> np.ndarray:
    """A zero array kept for reuse, flagged read-only: it is never filled again, and a
    kernel that wrote to it would fail loudly instead of corrupting later steps."""
    key = (shape, np.dtype(dtype))
    z = _ZEROS.get(key)
    if z is None:
        if len(_ZEROS) > 16:
            _ZEROS.clear()
        z = _ZEROS[key] = np.zeros(shape, dtype)
        z.flags.writeable = False
    return z


def start_state(node, ctx, init_state, batch: int, stateful: bool):
    """(the state a call starts from, whether it came through an initial_state edge). As in
    Keras 3: a given initial state on every call, else a stateful layer's carried state,
    else None (zeros). A stateful layer's batch size is checked either way."""
    carried = ctx.stateful_state(node, batch) if stateful else None
    if init_state is not None:
        return init_state, True
    return carried, False


class RecurrentSpec(LayerSpec):
    recurrent = True
    positional = ("units",)
    flags = FLAGS
    gates = 1
    state_names: tuple[str, ...] = ("h",)
    # kernel_forward takes an embedding's rows by id: inp = {"ids": (T, B), "table": (V, G*u)}
    # (xp[t, b] = table[ids[t, b]]), or inp with X the embedding E and "xids" (x_t = E[xids[t]])
    takes_table = False

    def state_type(self, opts) -> StateType:
        return StateType(self.name, tuple((n, opts["units"]) for n in self.state_names))

    def bias_shape(self, opts) -> tuple[int, ...]:
        return (self.gates * opts["units"],)

    def bias_init(self, opts) -> str:
        return "zeros"

    def cell_weights(self, opts, features: int, prefix: str) -> list[WeightSpec]:
        u, g, tr = opts["units"], self.gates, opts.get("trainable", True)
        ws = [WeightSpec(f"{prefix}/kernel", (features, g * u), "glorot_uniform", tr),
              WeightSpec(f"{prefix}/recurrent_kernel", (u, g * u), "orthogonal", tr)]
        if opts["use_bias"]:
            ws.append(WeightSpec(f"{prefix}/bias", self.bias_shape(opts), self.bias_init(opts), tr))
        return ws

    def check_input(self, node, x: TensorType, ctx) -> bool:
        if x.is_tokens:
            ctx.error(node, f"{self.name} takes a sequence of feature vectors, but its input is "
                      f"{x.describe()}", "put embed(vocab, dim) in front of it to turn ids into vectors")
            return False
        if not x.seq:
            ctx.error(node, f"{self.name} needs a sequence, but its input is {x.describe()}",
                      ctx.seq_hint(node, 0))
            return False
        return True

    def infer(self, node, ins, ctx) -> None:
        (x,) = ins
        if not self.check_input(node, x, ctx):
            return
        u = node.opts["units"]
        node.weights = self.cell_weights(node.opts, x.features, node.name)
        if node.opts["return_sequences"]:
            node.outputs["out"] = TensorType(True, u, x.steps, masked=x.masked)
        else:
            node.outputs["out"] = TensorType(False, u)
        node.state = self.state_type(node.opts) if node.opts["return_state"] else None

    def takes_state(self, node) -> StateType:
        return self.state_type(node.opts)

    # --- run time ------------------------------------------------------------------------
    # A cell subclass adapts its compiled kernels to these two calls:
    #   kernel_forward(inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec, keep, last_only)
    #       -> (out, final, saved)
    #   kernel_backward(saved, dout, dfinal) -> (dxp, dU, dinit, db_rec, dK, db_in), dK and
    #     db_in (the input kernel's and input bias's gradients) None unless the kernel made them
    #   with in_kernel_dx, also kernel_backward(saved, dout, dfinal, W=kernel) for a forward
    #     that projected X step by step: the same and the input's gradient dX last
    # inp is the input projection: {"xp": (T, B, G*u)} for all steps at once, or
    # {"xp": None, "X": X, "W": kernel, "b_in": bias} to project step by step inside the
    # kernel. init and final are state tuples; out is (T, B, u), or (1, B, u) with last_only.

    in_kernel_dx = False     # kernel_backward can make dX = dxp W^T itself

    def split_bias(self, opts, bias):
        """(input bias added to xp, recurrent bias given to the kernel)."""
        return bias, None

    def join_bias(self, db_in, db_rec):
        return db_in

    def zero_state(self, batch, units, dtype) -> tuple:
        return tuple(np.zeros((batch, units), dtype) for _ in self.state_names)

    @staticmethod
    def dropout_masks(opts, ctx, B: int, F: int, u: int, dtype):
        """Input and recurrent dropout masks, scaled by 1/(1-p): one per sequence, as Keras
        draws them, and only in training (None otherwise)."""
        dmask = rmask = None
        if ctx.training and opts["dropout"] > 0:
            p = opts["dropout"]
            dmask = (ctx.rng.random((B, F)) >= p).astype(dtype) / dtype.type(1 - p)
        if ctx.training and opts["recurrent_dropout"] > 0:
            p = opts["recurrent_dropout"]
            rmask = (ctx.rng.random((B, u)) >= p).astype(dtype) / dtype.type(1 - p)
        return dmask, rmask

    def table_input(self, opts, x: Act, dmask, dtype, sole_reader: bool):
        """(E, ids) when x is an embedding's rows E[ids] better read through the projected
        table E W + b: V rows projected once instead of T*B, and in training dW = E^T dT,
        dE = dT W^T from the table's gradient dT (V, G) in place of two (T*B)-row products.
        Only where the kernel takes a table, this layer is the rows' sole reader (their
        gradient leaves as a TableGrad), there is no input dropout, V <= T*B / 3 (below the
        break-even near T*B / 2, where the table's gradient and the scatter into it cost
        what they save; bench/README.md), and, in float32, u is a multiple of 8 (the fused
        steps'); else None (and on the plain route)."""
        if paths.plain() or not (self.takes_table and x.gathered is not None and sole_reader and dmask is None):
            return None
        E, ids = x.gathered
        if 3 * E.shape[0] > ids.size or (dtype == np.float32 and opts["units"] % 8):
            return None
        return E, ids

    def n_states(self, opts) -> int:
        return len(self.state_names)

    def zero_steps(self, opts, W, x: Act, init, need_dx: bool = True):
        """run_cell over a sequence of zero steps, as Keras: no step runs, so the final state
        is the initial one (zeros by default) and so is the last output; with
        return_sequences the output is an empty sequence. backprop hands the final state's
        gradient back to the initial state (the last output's gradient joins it: see
        last_output_grad), the weights get zero gradients and x an empty one."""
        _, B, F = x.shape
        u, dtype = opts["units"], W[0].dtype
        if init is None:
            init = tuple(np.zeros((B, u), dtype) for _ in range(self.n_states(opts)))
        final = tuple(np.array(s, dtype=dtype, copy=True) for s in init)
        out = np.zeros((0, B, u), dtype) if opts["return_sequences"] else final[0][None].copy()

        def backprop(dout, dfinal):
            dX = np.zeros((0, B, F), dtype) if need_dx else None
            return dX, [np.zeros_like(w) for w in W], tuple(dfinal)

        return out, final, backprop

    def run_cell(self, opts, W, x: Act, ctx, init, backwards: bool, zero_out: bool, need_dx: bool = True,
                 sole_reader: bool = False):
        """Run the cell over x: (out in processing order, final state, backprop). out is
        (T, B, u) with return_sequences, else (1, B, u): the last output only. need_dx:
        False when x's gradient is not used (backprop then returns None for it). sole_reader:
        this layer is the only one to read x (see table_input)."""
        if x.shape[0] == 0:
            return self.zero_steps(opts, W, x, init, need_dx)
        kernel, U = W[0], W[1]
        bias = W[2] if opts["use_bias"] else None
        T, B, F = x.shape
        u, dtype = opts["units"], kernel.dtype
        dmask, rmask = self.dropout_masks(opts, ctx, B, F, u, dtype)
        b_in, b_rec = self.split_bias(opts, bias)
        if init is None:
            init = self.zero_state(B, u, dtype)
        last_only = not opts["return_sequences"]
        plain = paths.plain()      # the reference route: xp by one product, all of x time-major
        per_step = F <= PER_STEP_MAX_FEATURES and not plain

        def run(X, init, mask, keep, xids=None):
            inp = dict(xp=None, X=X, W=kernel, b_in=b_in) if per_step else self.projected(X, kernel, b_in)
            if xids is not None:
                inp["xids"] = xids
            # inference (keep=False) keeps nothing for backward
            return self.kernel_forward(inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec,
                                       keep=keep, last_only=last_only)

        X = None
        gathered = self.table_input(opts, x, dmask, dtype, sole_reader)
        if gathered is not None:
            E, ids = gathered
            table = matmul(E, kernel)                       # table = E @ kernel + b_in
            if b_in is not None:
                table += b_in
            out, final, saved = self.kernel_forward(dict(xp=None, ids=ids, table=table), U, init, x.mask, rmask, opts,
                                                    backwards, zero_out, b_rec, keep=ctx.training,
                                                    last_only=last_only)
        elif not ctx.training and per_step and self.takes_table and x.gathered is not None:
            # inference over an embedding's rows: the kernel reads them in place, E[ids] is
            # never made (no gathering pass)
            E, ids = x.gathered
            out, final, saved = run(E, init, x.mask, False, xids=ids)
        elif ctx.training or not last_only or plain:
            X = x.data
            if dmask is not None:
                X = X * dmask
            out, final, saved = run(X, init, x.mask, ctx.training)
        elif per_step:
            # inference, last output only, x @ W step by step: the kernel reads the steps in
            # place (from the batch-major model input where that is what x is), so neither a
            # time-major copy nor a projection grows with T
            out, final, saved = run(x.view(), init, x.mask, False)
        else:
            # inference, last output only, a wide input: a chunk of steps at a time, so the
            # projection xp (and the time-major copy of a batch-major input) stays small
            step = max(1, CHUNK_ROWS // B)
            starts = range(0, T, step)
            final = init
            for t0 in (reversed(starts) if backwards else starts):
                t1 = min(T, t0 + step)
                mask = None if x.mask is None else x.mask[t0:t1]
                out, final, saved = run(x.steps(t0, t1), final, mask, False)

        def backprop(dout, dfinal):
            if need_dx and per_step and X is not None and self.in_kernel_dx:
                # X W was taken step by step: the kernel makes dX = dxp W^T too
                dxp, dU, dinit, db_rec, dK, db_in, dX = self.kernel_backward(saved, dout, dfinal, W=kernel)
                if dmask is not None:
                    dX *= dmask                             # undo X = x * dmask
                return dX, [dK, dU] + ([self.join_bias(db_in, db_rec)] if bias is not None else []), dinit
            dxp, dU, dinit, db_rec, dK, db_in = self.kernel_backward(saved, dout, dfinal)
            if gathered is not None:
                # dK was the table's gradient dT: undo table = E @ kernel + b_in (the kernel
                # summed dT's rows into db_in)
                dT = dK
                dK = matmul(E.T, dT)
                dX = TableGrad(matmul(dT, kernel.T)) if need_dx else None
                grads = [dK, dU] + ([self.join_bias(db_in, db_rec)] if bias is not None else [])
                return dX, grads, dinit
            dxp2 = flat(dxp)
            if dK is None:                                  # not made by the kernel
                dK = matmul(flat(X).T, dxp2)                # undo xp = X @ kernel
                db_in = column_sums(dxp2) if bias is not None else None
            dX = None
            if need_dx:
                dX = matmul(dxp2, kernel.T).reshape(T, B, F)
                if dmask is not None:
                    dX *= dmask                             # undo X = x * dmask
            grads = [dK, dU]
            if bias is not None:
                grads.append(self.join_bias(db_in, db_rec))
            return dX, grads, dinit

        return out, final, backprop

    @staticmethod
    def projected(X, kernel, b_in) -> dict:
        """kernel_forward's inp with xp = X @ kernel for all of X's steps: one product (the
        kernel adds b_in step by step)."""
        T, B, F = X.shape
        return dict(xp=matmul(flat(X), kernel).reshape(T, B, -1), X=None, W=None, b_in=b_in)

    def forward(self, node, W, ins, ctx, init_state=None):
        x = ins[0]
        o = node.opts
        T, B, _ = x.shape
        init, from_edge = start_state(node, ctx, init_state, B, o["stateful"])
        out, final, backprop_cell = self.run_cell(o, W, x, ctx, init, o["go_backwards"], o["zero_output_for_mask"],
                                                  need_dx=ctx.needs_grad(node.inputs[0]),
                                                  sole_reader=ctx.sole_reader(node, node.inputs[0]))
        if o["stateful"]:
            ctx.keep_state(node, final)
        seq = o["return_sequences"]
        mask = x.mask[::-1] if (x.mask is not None and o["go_backwards"]) else x.mask
        outputs = {"out": Act(out if seq else out[-1], mask if seq else None)}
        if o["return_state"]:
            outputs["state"] = final

        def backprop(d):
            dfinal = d.get("state") or tuple(np.zeros_like(s) for s in final)
            g = d.get("out")
            if seq and g is not None and g.dtype == out.dtype and g.flags.c_contiguous:
                dout = g                                   # the kernels only read dout
            elif not seq and (mask is None or T == 0):
                # the last output is the final h (over zero steps the initial h): its gradient
                # joins dh_T, and every step's dout is a zero array the kernels only read
                # (kept, not filled each step)
                dout = _read_only_zeros((T,) + out.shape[1:], out.dtype)
                if g is not None:
                    dfinal = (dfinal[0] + g,) + tuple(dfinal[1:])
            else:
                dout = buffers.zeros((T,) + out.shape[1:], out.dtype)
                if g is not None:
                    if seq:
                        dout[...] = g
                    else:
                        dout[-1] = g
            dX, grads, dinit = backprop_cell(dout, dfinal)
            return [dX], grads, (dinit if from_edge else None)

        return outputs, backprop
