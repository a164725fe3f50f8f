"""SimpleRNN, LSTM and GRU on the CPU: the input projection around the compiled time loops
(rnndsl/kernels/cpu), and the paths that make it cheap. The layer's math is in
rnndsl/layers/recurrent.py and the cells' files; what a layer returns (stateful carry,
masks, return_state) is runtime/recurrent.py's, shared with the CUDA engine.

Paths of `Recurrent.run_cell`: an embedding's rows read through the projected table
E W + b (table_input); x_t W + b projected step by step inside the kernel for inputs up
to PER_STEP_MAX_FEATURES wide, else one product before the time loop; in inference a
last-output-only layer reads the steps in place, or a chunk of CHUNK_ROWS rows at a time.
"""

from __future__ import annotations

import numpy as np

from ...kernels.cpu import paths
from ...kernels.cpu.parallel import column_sums, in_order, matmul
from ...layers.base import REGISTRY
from ...layers.recurrent import RecurrentSpec
from ..recurrent import dropout_masks, layer_outputs, output_is_first_state, start_state
from ..tensor import Act, TableGrad, flat
from .ops import OPS

# Up to this many input features the kernels project each step's input themselves
# (x_t @ W + b, one small packed product a step): no (T, B, G) array and no pass of its
# own for the bias. Against one large product before the time loop this is faster at few
# features and even at 512 (bench/README.md, "Measurements behind the code"). Wider inputs
# keep the one large product.
PER_STEP_MAX_FEATURES = 512
# rows (steps x batch) per chunk when inference runs a last-output-only layer chunk by chunk
CHUNK_ROWS = 4096


class Recurrent:
    """Runs one built-in recurrent layer kind. A subclass adapts its compiled kernels to:

    kernel_forward(inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec, keep, last_only, derive, ready)
        -> (out, final, saved); derive: RunCtx.derived in inference (what the kernel may keep
        between calls: packed weights), else None; ready: None, or in inference a list that
        receives the call made ready to run again (a kind that makes one: run_again), which
        a kind that makes none leaves empty
    run_again(run, X, init, ids) -> (out, final): that call run on new X (None: on the ids
        of a projected table's rows) and initial states of the same shapes and layout
        (run_fits(run, X, init, ids) first: whether they are)
    kernel_backward(saved, dout, dfinal, defer) -> (dxp, dU, dinit, db_rec, dK, db_in), dK and
      db_in (the input kernel's and input bias's gradients) None unless the kernel made them;
      defer: True where the caller reads none of the returned arrays before a together()
      block it may be in ends (a bidirectional layer's halves): the kernel may then hold its
      time loop back to run beside the other half's (LSTM's does), or run at once
    with in_kernel_dx, also kernel_backward(saved, dout, dfinal, defer, W=kernel) for a
      forward that projected X step by step: the same and the input's gradient dX last

    inp is the input projection: {"xp": (T, B, G*u)} for all steps at once, or
    {"xp": None, "X": X, "W": kernel, "b_in": bias} to project step by step inside the
    kernel. init and final are state tuples; out is (T, B, u), or (1, B, u) with last_only.
    """

    name = ""
    # kernel_forward takes an embedding's rows by id: inp = {"ids": (T, B), "table": (V, G*u)}
    # (xp[t, b] = table[ids[t, b]])
    takes_table = False
    # kernel_forward's inference takes inp with X the embedding E and "xids" (x_t = E[xids[t]])
    reads_rows = False
    # ... and its training too (what it saves, and its backward, take the rows by xids)
    trains_on_rows = False
    in_kernel_dx = False     # kernel_backward can make dX = dxp W^T itself

    @property
    def spec(self):
        """The layer kind this runs (its options, state parts, weights)."""
        return REGISTRY[self.name]

    def n_states(self, opts) -> int:
        spec = self.spec
        if type(spec).state_type is RecurrentSpec.state_type:
            return len(spec.state_names)        # its rule: a part per state name (no StateType made each call)
        return len(spec.state_type(opts).parts)

    def split_bias(self, opts, bias):
        """(input bias added to xp, recurrent bias given to the kernel)."""
        return bias, None

    def join_bias(self, db_in, db_rec):
        return db_in

    def zero_state(self, opts, batch, dtype) -> tuple:
        """Zero initial states, read-only and kept for reuse: the kernels only copy them (their
        final state starts as a copy of the initial one), so none is made afresh each call."""
        z = OPS.read_only_zeros((batch, opts["units"]), dtype)
        return (z,) * self.n_states(opts)

    def table_input(self, opts, x: Act, dmask, dtype, sole_reader: bool, ctx, W):
        """(E, ids, table) when x is an embedding's rows E[ids] better read through the
        projected table E W + b: V rows projected once instead of T*B, and in training dW =
        E^T dT, dE = dT W^T from the table's gradient dT (V, G) in place of two (T*B)-row
        products. Only where the kernel takes a table, this layer is the rows' sole reader
        (their gradient leaves as a TableGrad), there is no input dropout, in float32 u is a
        multiple of 8 (the fused steps'), and V <= T*B / 3 (below the break-even near
        T*B / 2, where the table's gradient and the scatter into it cost what they save;
        bench/README.md); else None (and on the plain route). Inference keeps the table
        while the weights are unchanged (RunCtx.derived), and at a larger V takes it from
        the second call at the same weights on, where a table that size is kept."""
        if paths.plain() or not (self.takes_table and x.gathered is not None and sole_reader and dmask is None):
            return None
        E, ids = x.gathered
        if dtype == np.float32 and opts["units"] % 8:
            return None
        V, G = E.shape[0], W[0].shape[1]
        now = 3 * V <= ids.size
        if not (now or ctx.keeps(V * G * dtype.itemsize)):
            return None
        b_in = self.split_bias(opts, W[2] if opts["use_bias"] else None)[0]

        def project():
            table = matmul(E, W[0])                       # table = E @ kernel + b_in
            if b_in is not None:
                table += b_in
            return table

        table = ctx.derived(("table", id(W[0])), (E, *W), project, now)
        return None if table is None else (E, ids, table)

    def zero_steps(self, opts, W, x: Act, init, need_dx: bool = True):
        """run_cell over a sequence of zero steps, as Keras: no step runs, so the final state
        is the initial one (zeros by default) and so is the last output (zeros for a cell's
        own output); with return_sequences the output is an empty sequence. backprop hands
        the final state's gradient back to the initial state (the last output's gradient
        joins it: see layer_outputs), the weights get zero gradients and x an empty one."""
        _, B, F = x.shape
        u, dtype = opts["units"], W[0].dtype
        if init is None:
            init = tuple(np.zeros((B, u), dtype) for _ in range(self.n_states(opts)))
        final = tuple(np.array(s, dtype=dtype, copy=True) for s in init)
        if opts["return_sequences"]:
            out = np.zeros((0, B, u), dtype)
        else:
            out = final[0][None].copy() if output_is_first_state(opts) else np.zeros((1, B, u), dtype)

        def backprop(dout, dfinal):
            dX = np.zeros((0, B, F), dtype) if need_dx else None
            return dX, [np.zeros_like(w) for w in W], tuple(dfinal)

        return out, final, backprop

    def run_cell(self, opts, W, x: Act, ctx, init, backwards: bool, zero_out: bool, need_dx: bool = True,
                 sole_reader: bool = False, ready: list | None = None):
        """Run the cell over x: (out in processing order, final state, backprop). out is
        (T, B, u) with return_sequences, else (1, B, u): the last output only. need_dx:
        False when x's gradient is not used (backprop then returns None for it). sole_reader:
        this layer is the only one to read x (see table_input). ready: a list, in inference,
        that receives the kernel's call made ready to run again (kernel_forward) where the
        cell ran in one call over ready_input(opts, x), or over the projected table's rows
        at an embedding's ids; else it stays empty."""
        if x.shape[0] == 0:
            return self.zero_steps(opts, W, x, init, need_dx)
        kernel, U = W[0], W[1]
        bias = W[2] if opts["use_bias"] else None
        T, B, F = x.shape
        u, dtype = opts["units"], kernel.dtype
        dmask, rmask = dropout_masks(opts, ctx, B, F, u, dtype)
        b_in, b_rec = self.split_bias(opts, bias)
        if init is None:
            init = self.zero_state(opts, B, dtype)
        last_only = not opts["return_sequences"]
        plain = paths.plain()      # the reference route: xp by one product, all of x time-major
        derive = None if ctx.training else ctx.derived
        per_step = F <= PER_STEP_MAX_FEATURES and not plain

        def run(X, init, mask, keep, xids=None, ready=None):
            inp = dict(xp=None, X=X, W=kernel, b_in=b_in) if per_step else self.projected(X, kernel, b_in)
            if xids is not None:
                inp["xids"] = xids
            # inference (keep=False) keeps nothing for backward
            return self.kernel_forward(inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec,
                                       keep=keep, last_only=last_only, derive=derive, ready=ready)

        X = None
        on_rows = False                 # training read an embedding's rows by id (X stays None)
        gathered = self.table_input(opts, x, dmask, dtype, sole_reader, ctx, W)
        if gathered is not None:
            E, ids, table = gathered
            out, final, saved = self.kernel_forward(dict(xp=None, ids=ids, table=table), U, init, x.mask, rmask, opts,
                                                    backwards, zero_out, b_rec, keep=ctx.training,
                                                    last_only=last_only, derive=derive,
                                                    # a table too large to keep is made each call (derived)
                                                    ready=ready if ctx.keeps(table.nbytes) else None)
        elif not ctx.training and per_step and self.reads_rows and x.gathered is not None:
            # inference over an embedding's rows: the kernel reads them in place, E[ids] is
            # never made (no gathering pass)
            E, ids = x.gathered
            out, final, saved = run(E, init, x.mask, False, xids=ids)
        elif ctx.training and per_step and self.trains_on_rows and x.gathered is not None and dmask is None:
            # training over an embedding's rows: the kernel's fused step reads them in place (its
            # other routes gather them themselves); no (T, B, dim) copy kept for the backward
            E, ids = x.gathered
            on_rows = True
            out, final, saved = run(E, init, x.mask, True, xids=ids)
        elif ctx.training or not last_only or plain:
            X = x.data
            if dmask is not None:
                X = X * dmask
            out, final, saved = run(X, init, x.mask, ctx.training,
                                    ready=None if ctx.training or plain or not per_step else ready)
        elif per_step:
            # inference, last output only, x @ W step by step: the kernel reads the steps in
            # place (from the batch-major model input where that is what x is), so neither a
            # time-major copy nor a projection grows with T
            out, final, saved = run(x.view(), init, x.mask, False, ready=ready)
        else:
            # inference, last output only, a wide input: a chunk of steps at a time, so the
            # projection xp (and the time-major copy of a batch-major input) stays small
            step = max(1, CHUNK_ROWS // B)
            starts = range(0, T, step)
            final = init
            with in_order():        # each chunk starts from the state the one before ends in
                for t0 in (reversed(starts) if backwards else starts):
                    t1 = min(T, t0 + step)
                    mask = None if x.mask is None else x.mask[t0:t1]
                    out, final, saved = run(x.steps(t0, t1), final, mask, False)

        def backprop(dout, dfinal):
            if need_dx and per_step and (X is not None or on_rows) and self.in_kernel_dx:
                # X W was taken step by step: the kernel makes dX = dxp W^T too
                dxp, dU, dinit, db_rec, dK, db_in, dX = self.kernel_backward(saved, dout, dfinal, dmask is None,
                                                                             W=kernel)
                if dmask is not None:
                    dX *= dmask                             # undo X = x * dmask
                return dX, [dK, dU] + ([self.join_bias(db_in, db_rec)] if bias is not None else []), dinit
            # below, only dK made by the kernel and no dX leave its outputs unread
            dxp, dU, dinit, db_rec, dK, db_in = self.kernel_backward(saved, dout, dfinal,
                                                                     gathered is None and not need_dx)
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
    def ready_input(opts, x: Act):
        """What run_cell's inference ran a call made ready over: every step made (x.data) for
        a layer returning sequences, else a view of the steps (x.view())."""
        return x.data if opts["return_sequences"] else x.view()

    def run_fits(self, run, X, init, ids=None) -> bool:
        return False

    def run_again(self, run, X, init, ids=None):
        raise NotImplementedError(f"{self.name} makes no call ready to run again")

    def again(self, node, run, dtype):
        """The layer's inference made ready: again(ins, init_state, ctx) -> (outputs, backprop)
        as forward gives them, by the kernel's call `run` (kernel_forward's ready) on the new
        input (its steps, or an embedding's ids where run reads the projected table's rows),
        or None (nothing run) where the input or the initial state is not like those run was
        made for: a mask, other shapes or layout, steps where it read ids or ids where steps."""
        o = node.opts

        def again(ins, init_state, ctx):
            x = ins[0]
            if x.mask is not None:
                return None
            if x.gathered is not None:
                X, ids = None, x.gathered[1]
                T, B = ids.shape
            else:
                X, ids = self.ready_input(o, x), None
                T, B = X.shape[:2]
            init = self.zero_state(o, B, dtype) if init_state is None else init_state
            if not self.run_fits(run, X, init, ids):
                return None
            out, final = self.run_again(run, X, init, ids)
            return layer_outputs(OPS, node, ctx, T, out, final, None, _inference_only, init_state is not None)

        return again

    @staticmethod
    def projected(X, kernel, b_in) -> dict:
        """kernel_forward's inp with xp = X @ kernel for all of X's steps: one product (the
        kernel adds b_in step by step)."""
        T, B, F = X.shape
        return dict(xp=matmul(flat(X), kernel).reshape(T, B, -1), X=None, W=None, b_in=b_in)

    def forward(self, node, W, ins, ctx, init_state=None):
        """The layer over its input: (outputs, backprop) as the executor takes them. In
        inference, the call made ready by an earlier one (again) where it fits."""
        done = ctx.run_prepared(node, W, ins, init_state)
        if done is not None:
            return done
        x = ins[0]
        o = node.opts
        T, B, _ = x.shape
        init, from_edge = start_state(node, ctx, init_state, B, o["stateful"])
        ready = [] if ctx.prepares(o["stateful"]) else None
        out, final, backprop_cell = self.run_cell(o, W, x, ctx, init, o["go_backwards"], o["zero_output_for_mask"],
                                                  need_dx=ctx.needs_grad(node.inputs[0]),
                                                  sole_reader=ctx.sole_reader(node, node.inputs[0]), ready=ready)
        if ready:
            ctx.keep_prepared(node, W, self.again(node, ready[0], W[0].dtype))

        def cell_backprop(dout, dfinal):
            dX, grads, dinit = backprop_cell(dout, dfinal)
            return [dX], grads, dinit

        return layer_outputs(OPS, node, ctx, T, out, final, x.mask, cell_backprop, from_edge)


def _inference_only(dout, dfinal):
    """The backprop of a call made ready: inference keeps nothing for a backward."""
    raise RuntimeError("an inference call keeps nothing for a backward pass")
