"""Where rnndsl's time goes: an instrumented train step and inference step per workload.

`python bench/run.py --profile [--only NAMES] [--steps N]`

Timers are put around rnndsl's own functions for the duration of the profile
(and taken off afterwards; nothing in rnndsl is edited):

* each layer's forward (`Executor._run_node`: the CPU runner of its kind, in
  rnndsl/runtime/cpu) and the backprop closure it returns (per node);
* the compiled recurrent kernels, `kernel_forward` / `kernel_backward` of the
  CPU's cell runners (rnndsl/runtime/cpu/recurrent.py and its subclasses), and
  `parallel._run_together`, where a bidirectional layer's two halves, held back by
  `together()`, run at once, forward and backward (the numba time loops: recurrent
  products, per-step input projections, gate math, state copies and the kernels' own
  allocations). A layer's kernel time is the wall time during which at least one of
  its kernel calls ran (the union of the calls' intervals);
* the bookkeeping around the layers: input checks (`Executor.prepare_inputs`),
  the loss (`train.targets.output_loss`), the finite checks and the optimizer of a train
  step, the output transposes of `predict_on_batch`.

Each kernel call's arguments are recorded: T, B, G (gates x units), u, and how
it gets its input projection (`inp`): precomputed for all steps (xp, one big
product through rnndsl's row-split `matmul` in `Recurrent.projected`, for
inputs wider than PER_STEP_MAX_FEATURES) or per step inside the kernel (X, W:
x_t W + b on each worker's rows at every step). A last-output-only layer runs
inference as several kernel calls, one per chunk of CHUNK_ROWS rows; every call
is accounted.

Inside a kernel, the share of the matrix products is measured by issuing the
same products alone, the way the kernels issue them: `packed.rows_matmul` with
the operand packed once per call (`pack`, as the kernels do; np.dot for float64)
from a numba loop over the steps, split by batch rows as rnndsl's `run_rows`
splits a kernel (by `chunks`, with the kernel's own work estimate, in numba's
thread pool), BLAS at rnndsl's thread count. Forward: h U per step; BPTT: dZ U^T per step plus
dU: the (u,T*B)x(T*B,G) product (rnndsl's matmul), or, where lstm_backward
accumulates the weight gradients inside its time loop, each worker's
h_t^T dZ_t step by step (and x_t^T dZ_t, sum dZ_t, counted as projection). For a per-step projection
layer, the x_t W products (one per step per worker) are measured alone the
same way and reported as input projection, taken out of the kernel time; for a
precomputed one the projection is the big product x W before the kernel. The
backward projection products (dK = X^T dxp, and dX = dxp W^T unless run_cell
was told it is not needed: a layer reading a model input in a train step) are
big products through rnndsl's matmul after the kernel in both cases.

An LSTM reading an embedding through its projected table (`inp` with ids: see
`Recurrent.table_input`) has no projection inside its kernel; its projection
is the table product E W before it, and E^T dT, dT W^T after it in training (the
scatter of each step's dZ rows into dT, inside the kernel, stays kernel time).

The rest of the kernel time is gate math and bookkeeping (bias adds inside the
kernels included). The remainder of a recurrent layer's own time outside its
kernel and projection is NumPy glue (a bias pass over xp where the engine still
makes one, the bias gradient's column sum, zero-filled gradient buffers,
reversal and merging for bidirectional layers, copies, chunk transposes).
"Python orchestration" is what is left of the step: executor loop, tape,
closures, argument checks. A product's alone time is capped at the time it can
have taken (the kernel's, or the layer's outside it), so that gate math and glue
stay >= 0 and a layer's categories add up to its wall time (_split_pass); the
categories are computed step by step, and their medians scaled to add up to the
median step (profile_phase).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _union(intervals) -> float:
    """Total length of the union of (t0, t1) intervals."""
    total, end = 0.0, float("-inf")
    for t0, t1 in sorted(intervals):
        if t1 <= end:
            continue
        total += t1 - max(t0, end)
        end = t1
    return total


def _arg(a, k, i, name, default=None):
    return a[i] if len(a) > i else k.get(name, default)


# --- the probe ---------------------------------------------------------------------------

class Probe:
    def __init__(self):
        self.acc: dict = defaultdict(float)        # (node name or "(what)", part) -> seconds
        self.calls: dict = defaultdict(int)
        self.stack: list[str] = []                  # layer forwards / backprops in progress
        self.kernels: dict = defaultdict(list)      # node -> [call record] per kernel_forward call (this step)
        self.intervals: dict = defaultdict(list)    # (node, kernel part) -> [(t0, t1)] (this step)
        self.features: dict = {}                    # node -> input features
        self.kind: dict = {}                        # node -> layer kind
        self._tl = threading.local()                # .need_dx of the run_cell in progress on this thread
        self.backward = False                       # a layer's backprop is running
        self._undo: list = []

    def new_step(self) -> None:
        self.acc = defaultdict(float)
        self.kernels = defaultdict(list)
        self.intervals = defaultdict(list)

    def end_step(self) -> None:
        """Kernel time per node and part: the wall time covered by its calls."""
        for key, iv in self.intervals.items():
            self.acc[key] = _union(iv)

    # patching ------------------------------------------------------------------------
    def _wrap(self, owner, attr, make):
        if not hasattr(owner, attr):
            return
        had = attr in owner.__dict__
        old = owner.__dict__.get(attr)
        setattr(owner, attr, make(getattr(owner, attr)))
        self._undo.append((owner, attr, had, old))

    def remove(self) -> None:
        for owner, attr, had, old in reversed(self._undo):
            if had:
                setattr(owner, attr, old)
            else:
                delattr(owner, attr)
        self._undo.clear()

    def _timed(self, key, part):
        def make(orig):
            def wrapper(*a, **k):
                t0 = time.perf_counter()
                try:
                    return orig(*a, **k)
                finally:
                    self.acc[(key, part)] += time.perf_counter() - t0
                    self.calls[(key, part)] += 1
            return wrapper
        return make

    def install(self, model) -> None:
        from rnndsl.model import Model
        from rnndsl.runtime.cpu.bidirectional import CELLS
        from rnndsl.runtime.executor import Executor

        self._wrap(Executor, "_run_node", self._layer_forward)
        for cls in {type(c) for c in CELLS.values()}:
            self._wrap(cls, "run_cell", self._run_cell)
            self._wrap(cls, "kernel_forward", self._kernel("kernel_fwd", capture=True))
            self._wrap(cls, "kernel_backward", self._kernel("kernel_bwd"))
        # a bidirectional layer's two halves are held back inside parallel.together() and run
        # at once when its block ends: that run is the layer's kernel time, not glue
        from rnndsl.kernels.cpu import parallel
        self._wrap(parallel, "_run_together", self._held_kernels())
        self._wrap(Executor, "prepare_inputs", self._timed("(input checks)", "all"))
        self._wrap(Model, "_loss", self._timed("(loss)", "all"))
        self._wrap(Model, "_output_arrays", self._timed("(output transposes)", "all"))
        try:
            from rnndsl.train import loop
            self._wrap(loop, "_finite_grads", self._timed("(finite checks)", "all"))
        except ImportError:
            pass
        cfg = getattr(model, "train_config", None)
        if cfg is not None:
            self._wrap(type(cfg.optimizer), "apply", self._timed("(optimizer)", "all"))

    def _layer_forward(self, orig):
        probe = self

        def forward(spec, node, *a, **k):
            outer = not probe.stack
            name = node.name
            probe.kind[name] = node.kind
            ins = a[1] if len(a) > 1 else k.get("ins")
            # .shape, not .data: a batch-major model input would be made time-major by .data
            shape = getattr(ins[0], "shape", None) if ins else None
            if shape is not None and len(shape) == 3:
                probe.features[name] = shape[-1]
            probe.stack.append(name)
            t0 = time.perf_counter()
            try:
                outs, backprop = orig(spec, node, *a, **k)
            finally:
                dt = time.perf_counter() - t0
                probe.stack.pop()
            if not outer:
                return outs, backprop
            probe.acc[(name, "fwd")] += dt

            def timed_backprop(d):
                probe.stack.append(name)
                probe.backward = True
                t1 = time.perf_counter()
                try:
                    return backprop(d)
                finally:
                    probe.acc[(name, "bwd")] += time.perf_counter() - t1
                    probe.stack.pop()
                    probe.backward = False

            return outs, timed_backprop

        return forward

    def _run_cell(self, orig):
        """Notes, for the kernel calls inside, whether backward computes dX = dZ W^T (a layer
        reading a model input skips it in a train step: run_cell's need_dx)."""
        import inspect

        probe = self
        try:
            params = list(inspect.signature(orig).parameters.values())
        except (TypeError, ValueError):
            params = []
        names = [q.name for q in params]
        at = names.index("need_dx") - 1 if "need_dx" in names else None     # - 1: self
        default = params[at + 1].default if at is not None else True

        def run_cell(spec, *a, **k):
            if at is None:
                need = True
            else:
                need = k.get("need_dx", a[at] if len(a) > at else default)
            before = getattr(probe._tl, "need_dx", True)
            probe._tl.need_dx = bool(need)
            try:
                return orig(spec, *a, **k)
            finally:
                probe._tl.need_dx = before

        return run_cell

    def _record(self, spec, name, a, k) -> None:
        """What one kernel_forward call computes: shapes, projection kind, direction."""
        inp, U = _arg(a, k, 0, "inp"), _arg(a, k, 1, "U")
        opts = _arg(a, k, 5, "opts") or {}
        if getattr(U, "ndim", 0) != 2:
            return
        if isinstance(inp, dict):
            xp, X = inp.get("xp"), inp.get("X")
            b_in = inp.get("b_in")
        else:                                   # an older engine: xp itself
            xp, X, b_in = inp, None, None
        V = 0
        if isinstance(inp, dict) and getattr(inp.get("ids"), "ndim", 0) == 2:
            # an embedding's rows through its projected table (Recurrent.table_input)
            (T, B), per_step = inp["ids"].shape, False
            F, V = self.features.get(name), inp["table"].shape[0]
        elif isinstance(inp, dict) and getattr(inp.get("xids"), "ndim", 0) == 2:
            # an embedding's rows read in place by the kernel: X is the table E (V, F)
            (T, B), F, per_step = inp["xids"].shape, X.shape[1], True
        elif X is not None and getattr(X, "ndim", 0) == 3:
            (T, B, F), per_step = X.shape, True
        elif getattr(xp, "ndim", 0) == 3:
            (T, B, _), per_step = xp.shape, False
            F = self.features.get(name)
        else:
            return
        self.kernels[name].append(dict(
            T=int(T), B=int(B), G=int(U.shape[1]), u=int(U.shape[0]), F=int(F) if F else 0,
            per_step=per_step, V=int(V),
            # a precomputed xp without b_in had the bias added in a pass of its own (xp += b)
            bias_pass=(not per_step) and not V and b_in is None and bool(opts.get("use_bias", False)),
            direction=bool(_arg(a, k, 6, "backwards", False)),
            keep=bool(_arg(a, k, 9, "keep", True)),
            need_dx=bool(getattr(self._tl, "need_dx", True)),
            # the layer's backward kernel makes dX = dZ W^T itself (lstm_backward with W)
            in_kernel_dx=bool(getattr(spec, "in_kernel_dx", False)) and per_step and X is not None,
            dtype=str(U.dtype),
            # GRU with reset_after=false multiplies by U's blocks separately, with np.dot
            dot_blocks=getattr(spec, "name", "") == "gru" and not opts.get("reset_after", True)))

    def _held_kernels(self):
        """The run of kernel calls held back by together(): an interval of the layer's kernels
        (forward or backward ones)."""
        probe = self

        def make(orig):
            def run(calls):
                name = probe.stack[0] if probe.stack else "?"
                part = "kernel_bwd" if probe.backward else "kernel_fwd"
                t0 = time.perf_counter()
                try:
                    return orig(calls)
                finally:
                    probe.intervals[(name, part)].append((t0, time.perf_counter()))
            return run
        return make

    def _kernel(self, part, capture=False):
        probe = self

        def make(orig):
            def kernel(spec, *a, **k):
                name = probe.stack[0] if probe.stack else "?"
                t0 = time.perf_counter()
                try:
                    return orig(spec, *a, **k)
                finally:
                    probe.intervals[(name, part)].append((t0, time.perf_counter()))
                    if capture:
                        probe._record(spec, name, a, k)
            return kernel
        return make


# --- matmuls alone, issued as the kernels issue them ------------------------------------

_NUMBA = {}


def _numba_loops():
    if not _NUMBA:
        from numba import njit

        @njit(nogil=True)
        def dot_steps(A, W, P, C, b0, b1):
            for t in range(A.shape[0]):
                np.dot(A[t, b0:b1], W, C[b0:b1])

        try:
            from rnndsl.kernels.cpu.packed import pack, padded_width, rows_matmul
        except ImportError:                     # an engine before the packed products
            packed_steps = dot_steps

            def pack(U):
                return np.empty((0, 0, 32), U.dtype)

            def padded_width(n, dtype):
                return n
        else:
            @njit(nogil=True)
            def packed_steps(A, W, P, C, b0, b1):
                # as the kernels: rows_matmul(h_rec[k, b0:b1], U, Up, Zr[b0:b1]) every step
                for t in range(A.shape[0]):
                    rows_matmul(A[t, b0:b1], W, P, C[b0:b1])

        from numba import prange

        @njit(parallel=True)
        def steps_split(packed, A, W, P, C, rows, parts):
            # as the kernels' *_split drivers: the row ranges at once in numba's thread pool
            for p in prange(parts):
                b0, b1 = rows * p // parts, rows * (p + 1) // parts
                if packed:
                    packed_steps(A, W, P, C, b0, b1)
                else:
                    dot_steps(A, W, P, C, b0, b1)

        try:
            from rnndsl.kernels.cpu.packed import tn_accumulate
        except ImportError:                     # an engine without weight gradients in the loop
            grads_split = None
        else:
            @njit(parallel=True)
            def grads_split(X, H, dZ, C, rows, parts):
                # as lstm_backward_kernel: each worker adds its rows of x_t^T dZ_t, h^T dZ_t
                # and sum dZ_t to its own [dW; dU; db] every step
                nx, u = X.shape[2], H.shape[2]
                for p in prange(parts):
                    b0, b1 = rows * p // parts, rows * (p + 1) // parts
                    for t in range(0, dZ.shape[0], 2):     # two steps a pass, as the kernel
                        t2 = min(t + 1, dZ.shape[0] - 1)
                        n2 = b1 if t2 > t else b0
                        if nx > 0:
                            tn_accumulate(X[t, b0:b1], dZ[t, b0:b1], X[t2, b0:n2], dZ[t2, b0:n2], C[p, :nx])
                        tn_accumulate(H[t, b0:b1], dZ[t, b0:b1], H[t2, b0:n2], dZ[t2, b0:n2], C[p, nx:nx + u])
                        for b in range(b0, b1):
                            C[p, nx + u] += dZ[t, b]

        _NUMBA.update(packed_steps=packed_steps, dot_steps=dot_steps, pack=pack, padded_width=padded_width,
                      steps_split=steps_split, grads_split=grads_split)
    return _NUMBA


def _rnndsl_split(rows: int, work: int) -> list[tuple[int, int]]:
    """The batch-row split rnndsl's kernels use for this much work (one part when it has none)."""
    try:
        from rnndsl.kernels.cpu.parallel import chunks
    except ImportError:
        return [(0, rows)]
    return chunks(rows, work)


def _run_steps(packed: bool, A, W, P, C, rows: int, work: int) -> None:
    """A product loop over all steps, its batch rows split as rnndsl's run_rows splits a
    kernel: on this thread when one part is enough, else the parts at once in numba's pool."""
    nb = _numba_loops()
    parts = len(_rnndsl_split(rows, work))
    if parts == 1:
        nb["packed_steps" if packed else "dot_steps"](A, W, P, C, 0, rows)
    else:
        nb["steps_split"](packed, A, W, P, C, rows, parts)


def _rnndsl_matmul():
    try:
        from rnndsl.kernels.cpu.parallel import matmul
        return matmul
    except ImportError:
        return np.matmul


def _blas_context():
    """BLAS threads as rnndsl runs them: one per pool when rnndsl manages them."""
    import contextlib
    import os

    try:
        import rnndsl.runtime.threads  # noqa: F401
    except ImportError:
        return contextlib.nullcontext()
    from bench.timing import blas_threads
    return blas_threads(int(os.environ.get("RNNDSL_BLAS_THREADS", 1)))


def _median_time(fn, reps=7) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


class _Operands:
    """Random operands of one kernel call's products (shared by a direction's calls of the
    same shape: the chunks of an inference run)."""

    def __init__(self, c: dict, rng, nb: dict):
        T, B, G, u, F = c["T"], c["B"], c["G"], c["u"], c["F"]
        dt = np.dtype(c["dtype"])
        pw = nb["padded_width"]

        def rand(*shape):
            return rng.random(shape, dtype=dt) - dt.type(0.5)

        self.U = rand(u, G)
        if c["dot_blocks"]:
            # gru reset_after=false: Hd @ U_zr and (R * Hd) @ U_h per step; backward
            # dHH @ U_h^T and dZR @ U_zr^T, all np.dot on contiguous column blocks
            blocks = [np.ascontiguousarray(self.U[:, : 2 * (G // 3)]), np.ascontiguousarray(self.U[:, 2 * (G // 3):])]
            self.fwd = [("dot", rand(T, B, u), W, None, np.empty((B, W.shape[1]), dt)) for W in blocks]
            self.bwd = [("dot", rand(T, B, W.shape[1]), W.T, None, np.empty((B, u), dt)) for W in blocks]
        else:
            UT = np.ascontiguousarray(self.U.T)
            self.fwd = [("packed", rand(T, B, u), self.U, nb["pack"](self.U), np.empty((B, pw(G, dt)), dt))]
            self.bwd = [("packed", rand(T, B, G), self.U.T, nb["pack"](UT), np.empty((B, pw(u, dt)), dt))]
        self.H2 = rand(T * B, u)                     # h_rec, flat: dU = H2^T dZ2
        self.dZ2 = self.bwd[0][1].reshape(T * B, -1) if not c["dot_blocks"] else rand(T * B, G)
        self.H3, self.dZ3 = self.H2.reshape(T, B, u), self.dZ2.reshape(T, B, G)
        # the in-loop accumulators (lstm_backward), one per worker
        self.C_dU = np.zeros((8, u + 1, G), dt)
        self.C_dW = np.zeros((8, F + 1, G), dt)
        self.K = rand(F, G) if F else None
        if c["V"]:
            self.E, self.dT = rand(c["V"], F), rand(c["V"], G)
        elif F and c["per_step"]:
            self.X = rand(T, B, F)
            self.Kp = nb["pack"](self.K)
            self.XP = np.empty((B, pw(G, dt)), dt)
            self.X2 = self.X.reshape(T * B, F)
            self.KTp = nb["pack"](np.ascontiguousarray(self.K.T))     # dX_t = dZ_t K^T, step by step
            self.DX = np.empty((B, pw(F, dt)), dt)
        elif F:
            self.X2 = rand(T * B, F)
        if c["bias_pass"]:
            self.bias = rand(G)
            self.xp2 = np.empty((T * B, G), dt)


def matmul_alone(calls: list[dict], train: bool) -> dict:
    """Seconds, in one step, of the products of a recurrent layer's kernel calls issued alone
    the way rnndsl issues them. calls: the kernel_forward calls of one step (each chunk of
    an inference run, each direction of a bidirectional layer).

    rec_fwd: h U per step in every call; proj_in_fwd: x_t W per step, inside the kernels
    (per-step projection layers); proj_fwd: the big x W before the kernel (precomputed
    layers); bias_fwd: the xp += b pass where there is one. Training (the calls that kept
    their state for backward): rec_bwd: dZ U^T per step + the dU product; proj_bwd_in: the
    projection gradients inside the kernel (x_t^T dZ_t step by step, dZ W^T where the kernel
    makes it); proj_bwd: X^T dZ and dZ W^T outside it; bias_bwd: the bias gradient's column sum. The per-step loops are split by
    batch rows as rnndsl splits a kernel, the big products go through rnndsl's matmul."""
    nb = _numba_loops()
    mm = _rnndsl_matmul()
    rng = np.random.default_rng(0)

    def in_loop_grads(c):
        """Parts of lstm_backward's in-loop weight gradients for this call, or None."""
        try:
            from rnndsl.kernels.cpu.lstm import MAX_LOOP_GRAD
        except ImportError:
            return None
        lstm = c["G"] == 4 * c["u"] and not c["dot_blocks"]
        nx = c["F"] if c["per_step"] else 0           # a table's input: dU and db only
        if not (lstm and ((c["per_step"] and c["F"]) or c["V"]) and nb["grads_split"] is not None
                and (nx + c["u"] + 1) * c["G"] <= MAX_LOOP_GRAD):
            return None
        return len(_rnndsl_split(c["B"], c["T"] * c["B"] * c["G"] * (c["u"] + nx)))

    ops, cache = [], {}
    for c in calls:
        key = tuple(c[k] for k in ("direction", "T", "B", "G", "u", "F", "V", "per_step", "dtype", "dot_blocks"))
        if key not in cache:
            cache[key] = _Operands(c, rng, nb)
        ops.append((c, cache[key]))
    directions = sorted({c["direction"] for c in calls})
    groups = [[(c, o) for c, o in ops if c["direction"] == d] for d in directions]

    def fwd_work(c):      # the wrappers' work estimate: T*B*G*(u + F when projected per step)
        return c["T"] * c["B"] * c["G"] * (c["u"] + (c["F"] if c["per_step"] else 0))

    def rec_fwd(g):
        for c, o in g:
            for kind, A, W, P, C in o.fwd:
                _run_steps(kind == "packed", A, W, P, C, c["B"], fwd_work(c))

    def proj_in_fwd(g):
        for c, o in g:
            if c["per_step"] and c["F"]:
                _run_steps(True, o.X, o.K, o.Kp, o.XP, c["B"], fwd_work(c))

    def proj_fwd(g):
        for c, o in g:
            if c["V"]:
                mm(o.E, o.K)                                # the table E W
            elif not c["per_step"] and c["F"]:
                mm(o.X2, o.K)

    def bias_fwd(g):
        for c, o in g:
            if c["bias_pass"]:
                o.xp2 += o.bias

    def kept(g):
        return [(c, o) for c, o in g if c["keep"]]

    def in_loop(c):       # lstm_backward accumulates [dW; dU; db] inside its time loop
        return in_loop_grads(c) is not None

    def rec_bwd(g):
        for c, o in kept(g):
            for kind, A, W, P, C in o.bwd:
                _run_steps(kind == "packed", A, W, P, C, c["B"], c["T"] * c["B"] * c["G"] * c["u"])
            if in_loop(c):
                nb["grads_split"](o.H3[:, :, :0], o.H3, o.dZ3, o.C_dU, c["B"], in_loop_grads(c))
            else:
                mm(o.H2.T, o.dZ2)                           # dU over all steps

    def in_kernel_dx(c):  # lstm_backward makes dX = dZ W^T itself, each worker its rows
        return c["F"] and not c["V"] and c["need_dx"] and c.get("in_kernel_dx", False)

    def proj_bwd_in(g):
        """The backward projection products inside the kernel: dK step by step, dX after the loop."""
        for c, o in kept(g):
            if c["V"] or not c["F"]:
                continue
            if in_loop(c):                                  # dK (and db) step by step
                nb["grads_split"](o.X, o.H3[:, :, :0], o.dZ3, o.C_dW, c["B"], in_loop_grads(c))
            if in_kernel_dx(c):
                _run_steps(True, o.dZ3, o.K.T, o.KTp, o.DX, c["B"], c["T"] * c["B"] * c["G"] * c["F"])

    def proj_bwd(g):
        """The backward projection products outside the kernel."""
        for c, o in kept(g):
            if c["V"]:
                mm(o.E.T, o.dT)                             # dK from the table's gradient
                if c["need_dx"]:
                    mm(o.dT, o.K.T)                         # dE
            elif c["F"]:
                if not in_loop(c):
                    mm(o.X2.T, o.dZ2)                       # dK
                if c["need_dx"] and not in_kernel_dx(c):
                    mm(o.dZ2, o.K.T)                        # dX (skipped for a model input)

    def bias_bwd(g):
        for c, o in kept(g):
            if not in_loop(c):
                o.dZ2.sum(axis=0)

    def timed(part) -> float:
        if not _has_work(part):
            return 0.0
        return _median_time(lambda: [part(g) for g in groups])

    def _has_work(part):
        if part is proj_in_fwd:
            return any(c["per_step"] and c["F"] for c in calls)
        if part is proj_fwd:
            return any(not c["per_step"] and c["F"] for c in calls)
        if part is bias_fwd:
            return any(c["bias_pass"] for c in calls)
        if part in (rec_bwd, proj_bwd, proj_bwd_in, bias_bwd):
            return train and any(c["keep"] for c in calls)
        return True

    with _blas_context():
        out = {name: timed(part) for name, part in (
            ("rec_fwd", rec_fwd), ("proj_in_fwd", proj_in_fwd), ("proj_fwd", proj_fwd), ("bias_fwd", bias_fwd),
            ("rec_bwd", rec_bwd), ("proj_bwd_in", proj_bwd_in), ("proj_bwd", proj_bwd), ("bias_bwd", bias_bwd))}
    c0 = calls[0]
    out["split"] = len(_rnndsl_split(c0["B"], fwd_work(c0)))
    return out


# --- one workload ------------------------------------------------------------------------

CATEGORIES = (
    ("rec_matmul", "recurrent matmuls inside the kernels (h U per step; BPTT dZ U^T per step + dU)"),
    ("kernel_rest", "gate math, state copies, allocation inside the kernels"),
    ("projection", "input projections x W (+ backward x^T dZ, dZ W^T)"),
    ("glue", "NumPy glue in recurrent layers (bias add, zero-filled buffers, reversal, merge, copies)"),
    ("other_layers", "embed / dense / batchnorm layers (all their work)"),
    ("bookkeeping", "input checks, loss, finite checks, optimizer, output transposes"),
    ("python", "Python orchestration (executor loop, tape, closures; the rest)"),
)


def _split_pass(layer: float, kernel: float, rec: float, proj_in: float, proj_out: float) -> dict:
    """One pass (forward or backward) of a recurrent layer, `layer` seconds of wall time, of
    which `kernel` inside its kernels, split into categories that add up to `layer`.

    The alone times are capped at the time they can have taken: the recurrent products,
    then the per-step projection products, at the kernel's wall time; the projection
    products outside the kernel at the layer's time outside it. Gate math is the kernel's
    remainder, so it is clipped at >= 0 rather than going negative when the products alone
    took longer than the kernel (noise).
    Glue is the rest of the layer, >= 0 likewise."""
    kernel = min(kernel, layer)
    rec = min(rec, kernel)
    proj_in = min(proj_in, kernel - rec)
    outside = layer - kernel
    proj_out = min(proj_out, outside)
    return {"rec_matmul": rec, "kernel_rest": kernel - rec - proj_in,   # gate math: >= 0 by the caps
            "projection": proj_in + proj_out, "glue": outside - proj_out}


def profile_phase(fn, model, steps: int, phase: str) -> dict:
    from bench.timing import gc_paused

    probe = Probe()
    probe.install(model)
    totals, per_step = [], []
    try:
        with gc_paused():
            for _ in range(steps):
                probe.new_step()
                t0 = time.perf_counter()
                fn()
                totals.append(time.perf_counter() - t0)
                probe.end_step()
                per_step.append(probe.acc)
    finally:
        probe.remove()
    total = float(np.median(totals))
    train = phase == "train"
    nodes = sorted({k[0] for acc in per_step for k in acc if not k[0].startswith("(")})
    # the products alone, once per recurrent node, with the last step's kernel calls
    # (every step makes the same calls)
    alone = {name: matmul_alone(probe.kernels[name], train) for name in nodes if probe.kernels.get(name)}

    def categories(acc: dict, step_total: float) -> dict:
        cat = dict.fromkeys([k for k, _ in CATEGORIES], 0.0)
        for name in nodes:
            fwd, bwd = acc.get((name, "fwd"), 0.0), acc.get((name, "bwd"), 0.0)
            m = alone.get(name)
            if m is None:
                cat["other_layers"] += fwd + bwd
                continue
            # kernel wall time: the union of the calls' intervals (overlapping directions count once)
            kf, kb = acc.get((name, "kernel_fwd"), 0.0), acc.get((name, "kernel_bwd"), 0.0)
            parts = [_split_pass(fwd, kf, m["rec_fwd"], m["proj_in_fwd"], m["proj_fwd"])]
            if train:
                parts.append(_split_pass(bwd, kb, m["rec_bwd"], m["proj_bwd_in"], m["proj_bwd"]))
            for part in parts:
                for k, v in part.items():
                    cat[k] += v
        cat["bookkeeping"] = sum(v for k, v in acc.items() if k[0].startswith("("))
        # what no timer covered: >= 0, the timed parts being disjoint stretches of the step
        cat["python"] = max(step_total - sum(v for k, v in cat.items() if k != "python"), 0.0)
        return cat

    # Categories step by step (each step's own kernel times cap its products), then the
    # median of each over the steps: a step stalled by another process on the (shared)
    # machine then does not inflate whichever part it happened to hit. The medians need
    # not add up to the median step exactly; they are scaled by one common factor
    # (category_scale, close to 1) so that they do, every one staying >= 0.
    per_cat = [categories(acc, t) for acc, t in zip(per_step, totals)]
    cat = {k: float(np.median([c[k] for c in per_cat])) for k, _ in CATEGORIES}
    scale = total / sum(cat.values()) if sum(cat.values()) > 0 else 1.0
    cat = {k: v * scale for k, v in cat.items()}
    # per node and bookkeeping call: medians over the steps, part by part
    keys = {k for acc in per_step for k in acc}
    acc = {k: float(np.median([a.get(k, 0.0) for a in per_step])) for k in keys}
    per_node = {}
    for name in nodes:
        fwd, bwd = acc.get((name, "fwd"), 0.0), acc.get((name, "bwd"), 0.0)
        row = {"kind": probe.kind.get(name), "fwd": fwd, "bwd": bwd}
        m = alone.get(name)
        if m is not None:
            calls = probe.kernels[name]
            row.update(kernel_fwd=acc.get((name, "kernel_fwd"), 0.0), kernel_bwd=acc.get((name, "kernel_bwd"), 0.0),
                       kernel_shapes=[[c["T"], c["B"], c["G"], c["u"]] for c in calls],
                       rec_matmul=m["rec_fwd"] + (m["rec_bwd"] if train else 0.0),
                       projection=m["proj_in_fwd"] + m["proj_fwd"]
                       + (m["proj_bwd_in"] + m["proj_bwd"] if train else 0.0),
                       bias_alone=m["bias_fwd"] + (m["bias_bwd"] if train else 0.0),
                       split=m["split"],
                       projection_per_step=calls[0]["per_step"], features=calls[0]["F"],
                       projection_in_kernel=m["proj_in_fwd"])
            if train:
                row["input_grad"] = any(c["need_dx"] for c in calls)    # dX = dZ W^T computed
        per_node[name] = row
    book = {k[0]: v for k, v in acc.items() if k[0].startswith("(")}
    return {"profiled_step_s": total, "categories": cat, "nodes": per_node, "bookkeeping": book,
            "category_scale": scale}


def profile_workload(wl, steps: int, warmup: int) -> dict:
    from bench import peers
    from bench.timing import measure

    x, y = wl.make_data(np.random.default_rng(0))
    r = peers.rnndsl_runner(wl, x, y)
    out = {"spec": wl.spec, "batch": wl.batch}
    for phase in ("train", "infer"):
        fn = getattr(r, phase)
        if fn is None:
            continue
        plain = measure(fn, warmup, steps)
        prof = profile_phase(fn, r.model, steps, phase)
        prof["plain_median_s"] = plain["median"]
        out[phase] = prof
    return out


def format_profile(name: str, prof: dict) -> str:
    lines = [f"{name}"]
    for phase in ("train", "infer"):
        p = prof.get(phase)
        if not p:
            continue
        total = p["profiled_step_s"]
        lines.append(f"  {phase}: {1e3 * p['plain_median_s']:.2f} ms per step (median, unprofiled); "
                     f"{1e3 * total:.2f} ms profiled (median; parts are medians too)")
        for key, label in CATEGORIES:
            v = p["categories"][key]
            if key in ("rec_matmul", "kernel_rest", "projection", "glue") and not any(
                    "kernel_shapes" in n for n in p["nodes"].values()):
                continue
            lines.append(f"    {1e3 * v:9.2f} ms {100 * v / total:5.1f}%  {label}")
        for node, row in p["nodes"].items():
            detail = f"fwd {1e3 * row['fwd']:.2f}"
            if phase == "train":
                detail += f", bwd {1e3 * row['bwd']:.2f}"
            if "kernel_fwd" in row:
                detail += f" (kernels {1e3 * (row['kernel_fwd'] + row['kernel_bwd']):.2f}, of which recurrent " \
                          f"matmuls alone {1e3 * row['rec_matmul']:.2f}; projection alone " \
                          f"{1e3 * row['projection']:.2f}; bias add/sum alone {1e3 * row['bias_alone']:.2f}; " \
                          f"rows split {row['split']} ways" + \
                          ("; x W per step inside the kernels" if row.get("projection_per_step") else "") + ")"
            lines.append(f"      {node} ({row['kind']}): {detail} ms")
        book = ", ".join(f"{k.strip('()')} {1e3 * v:.2f}" for k, v in p["bookkeeping"].items())
        if book:
            lines.append(f"      bookkeeping: {book} ms")
    return "\n".join(lines)


def main(args) -> int:
    from bench.timing import BackgroundLoad, wait_quiet
    from bench.workloads import select

    out_path = Path(args.json) if args.json else HERE / "profile.json"
    steps = args.steps or (3 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    results = {}
    for wl in select(args.only):
        if wl.kind == "stream":
            continue
        if getattr(args, "wait_quiet", 0) > 0:
            wait_quiet(args.wait_quiet)
        try:
            with BackgroundLoad() as bg:
                results[wl.name] = profile_workload(wl, steps, warmup)
        except Exception as e:          # noqa: BLE001 - a workload the probes do not know; the others go on
            results[wl.name] = {"error": f"{type(e).__name__}: {e}"[:300]}
            print(f"{wl.name}: profile failed: {results[wl.name]['error']}", flush=True)
            continue
        results[wl.name]["background_cpu_share"] = bg.share
        print(format_profile(wl.name, results[wl.name]), flush=True)
        if (bg.share or 0) > 0.1:
            print(f"  (other processes used {100 * bg.share:.0f}% of the CPU meanwhile: noisy)", flush=True)
    doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "threads": args.threads, "steps": steps,
           "workloads": results}
    out_path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nprofile: {out_path}")
    return 0
