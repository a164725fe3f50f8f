"""Where rnndsl's time goes: an instrumented train step and inference step per workload.

`python bench/run.py --profile [--only NAMES] [--steps N]`

Timers are put around rnndsl's own functions for the duration of the profile
(and taken off afterwards; nothing in rnndsl is edited):

* each layer's forward and the backprop closure it returns (per node);
* the compiled recurrent kernels, `kernel_forward` / `kernel_backward` of the
  cell classes (the numba time loops: recurrent products, gate math, state
  copies and the kernels' own allocations);
* the bookkeeping around the layers: input checks (`Executor.prepare_inputs`),
  the loss (`Model._loss`), the finite checks and the optimizer of a train
  step, the output transposes of `predict_on_batch`.

Inside a kernel, the share of the matrix products is measured by issuing the
same products alone with the shapes the kernel saw (one (B,u)x(u,G*u) product
per step, and in BPTT one (B,G*u)x(G*u,u) per step plus the (u,T*B)x(T*B,G*u)
product for dU), from a numba loop like the kernels', split by batch rows
across rnndsl's workers as its kernels are, BLAS at rnndsl's thread count; the rest of the kernel
time is gate math and bookkeeping. The input projection x W (and its backward
products) is measured the same way with NumPy; the remainder of a recurrent
layer's own time outside its kernel is NumPy glue (bias add, zero-filled
gradient buffers, reversal and merging for bidirectional layers, copies).
"Python orchestration" is what is left of the step: executor loop, tape,
closures, argument checks.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


# --- the probe ---------------------------------------------------------------------------

class Probe:
    def __init__(self):
        self.acc: dict = defaultdict(float)        # (node name or "(what)", part) -> seconds
        self.calls: dict = defaultdict(int)
        self.stack: list[str] = []                  # layer forwards / backprops in progress
        self.kernels: dict = defaultdict(list)      # node -> [(T, B, G, u)] per kernel_forward call
        self.features: dict = {}                    # node -> input features
        self.kind: dict = {}                        # node -> layer kind
        self._undo: list = []

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
        from rnndsl.layers.base import REGISTRY
        from rnndsl.model import Model
        from rnndsl.runtime.executor import Executor

        classes = {type(s) for s in REGISTRY.values()}
        for cls in classes:
            self._wrap(cls, "forward", self._layer_forward)
            if hasattr(cls, "kernel_forward"):
                self._wrap(cls, "kernel_forward", self._kernel("kernel_fwd", capture=True))
                self._wrap(cls, "kernel_backward", self._kernel("kernel_bwd"))
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
            data = getattr(ins[0], "data", None) if ins else None
            if data is not None and data.ndim == 3:
                probe.features[name] = data.shape[-1]
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
                t1 = time.perf_counter()
                try:
                    return backprop(d)
                finally:
                    probe.acc[(name, "bwd")] += time.perf_counter() - t1
                    probe.stack.pop()

            return outs, timed_backprop

        return forward

    def _kernel(self, part, capture=False):
        probe = self

        def make(orig):
            def kernel(spec, *a, **k):
                name = probe.stack[0] if probe.stack else "?"
                t0 = time.perf_counter()
                try:
                    return orig(spec, *a, **k)
                finally:
                    probe.acc[(name, part)] += time.perf_counter() - t0
                    if capture:
                        xp, U = (a + (None, None))[:2]
                        if getattr(xp, "ndim", 0) == 3 and getattr(U, "ndim", 0) == 2:
                            probe.kernels[name].append((xp.shape[0], xp.shape[1], xp.shape[2], U.shape[0]))
            return kernel
        return make


# --- matmuls alone, with the kernels' shapes ---------------------------------------------

_NUMBA = {}


def _numba_loops():
    if not _NUMBA:
        from numba import njit

        @njit(nogil=True)
        def rec_fwd(H, U, Z):
            for t in range(H.shape[0]):
                np.dot(H[t], U, Z)

        @njit(nogil=True)
        def rec_bwd(dZ, U, dH):
            UT = U.T
            for t in range(dZ.shape[0] - 1, -1, -1):
                np.dot(dZ[t], UT, dH)

        _NUMBA.update(rec_fwd=rec_fwd, rec_bwd=rec_bwd)
    return _NUMBA


def _rnndsl_split(rows: int, work: int) -> list[tuple[int, int]]:
    """The batch-row split rnndsl's kernels use for this much work (one part when it has none)."""
    try:
        from rnndsl.kernels.cpu.parallel import chunks
    except ImportError:
        return [(0, rows)]
    return chunks(rows, work)


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


_POOL = None


def _in_parts(fns) -> None:
    """Run fns concurrently, the first on this thread (as rnndsl's run_split does)."""
    global _POOL
    if len(fns) == 1:
        fns[0]()
        return
    from concurrent.futures import ThreadPoolExecutor

    if _POOL is None or _POOL._max_workers < len(fns) - 1:
        _POOL = ThreadPoolExecutor(max_workers=len(fns) - 1)
    futures = [_POOL.submit(f) for f in fns[1:]]
    fns[0]()
    for f in futures:
        f.result()


def _median_time(fn, reps=7) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def matmul_alone(T: int, B: int, G: int, u: int, F: int | None) -> dict:
    """Seconds for the recurrent products (forward; BPTT) and the input projection
    (forward; its two backward products) of one kernel call of these shapes, issued the
    way rnndsl issues them: the per-step loops split by batch rows across its workers,
    the large products through its row-split matmul, BLAS at rnndsl's thread count."""
    nb = _numba_loops()
    mm = _rnndsl_matmul()
    rng = np.random.default_rng(0)
    f32 = np.float32
    U = rng.standard_normal((u, G)).astype(f32)
    parts = _rnndsl_split(B, T * B * G * u)
    bufs = []
    for b0, b1 in parts:
        b = b1 - b0
        bufs.append((rng.standard_normal((T, b, u)).astype(f32), np.empty((b, G), f32),
                     rng.standard_normal((T, b, G)).astype(f32), np.empty((b, u), f32)))
    H2 = rng.standard_normal((T * B, u)).astype(f32)
    dZ2 = rng.standard_normal((T * B, G)).astype(f32)

    def fwd():
        _in_parts([lambda w=w: nb["rec_fwd"](w[0], U, w[1]) for w in bufs])

    def bwd():
        _in_parts([lambda w=w: nb["rec_bwd"](w[2], U, w[3]) for w in bufs])
        mm(H2.T, dZ2)                                   # dU over all steps

    with _blas_context():
        out = {"rec_fwd": _median_time(fwd), "rec_bwd": _median_time(bwd), "split": len(parts)}
        if F:
            X = rng.standard_normal((T * B, F)).astype(f32)
            K = rng.standard_normal((F, G)).astype(f32)
            out["proj_fwd"] = _median_time(lambda: mm(X, K))
            out["proj_bwd"] = _median_time(lambda: (mm(X.T, dZ2), mm(dZ2, K.T)))
        else:
            out["proj_fwd"] = out["proj_bwd"] = 0.0
        bias = rng.standard_normal(G).astype(f32)
        xp = np.empty((T * B, G), f32)
        out["bias_fwd"] = _median_time(lambda: xp.__iadd__(bias))      # xp += b over all steps
        out["bias_bwd"] = _median_time(lambda: dZ2.sum(axis=0))        # the bias gradient
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


def profile_phase(fn, model, steps: int, phase: str) -> dict:
    from bench.timing import gc_paused

    probe = Probe()
    probe.install(model)
    totals, per_step = [], []
    try:
        with gc_paused():
            for _ in range(steps):
                probe.acc = defaultdict(float)
                t0 = time.perf_counter()
                fn()
                totals.append(time.perf_counter() - t0)
                per_step.append(probe.acc)
    finally:
        probe.remove()
    n = steps
    # medians over the steps, part by part: a step stalled by another process on the
    # (shared) machine then does not inflate whichever part it happened to hit
    keys = {k for acc in per_step for k in acc}
    acc = {k: float(np.median([a.get(k, 0.0) for a in per_step])) for k in keys}
    total = float(np.median(totals))
    nodes = sorted({k[0] for k in acc if not k[0].startswith("(")})
    per_node, cat = {}, dict.fromkeys([k for k, _ in CATEGORIES], 0.0)
    for name in nodes:
        fwd, bwd = acc.get((name, "fwd"), 0.0), acc.get((name, "bwd"), 0.0)
        kf, kb = acc.get((name, "kernel_fwd"), 0.0), acc.get((name, "kernel_bwd"), 0.0)
        row = {"kind": probe.kind.get(name), "fwd": fwd, "bwd": bwd}
        calls = probe.kernels.get(name, [])
        if calls:
            k_calls = len(calls) // n or 1
            shapes = calls[:k_calls]
            F = probe.features.get(name)
            mm = [matmul_alone(T, B, G, u, F) for T, B, G, u in shapes]
            train = phase == "train"

            def both(key):
                return sum(m[key + "_fwd"] for m in mm) + (sum(m[key + "_bwd"] for m in mm) if train else 0.0)

            rec, proj = both("rec"), both("proj")
            row.update(kernel_fwd=kf, kernel_bwd=kb, kernel_shapes=[list(s) for s in shapes],
                       rec_matmul=rec, projection=proj, bias_alone=both("bias"),
                       split=mm[0].get("split", 1))
            cat["rec_matmul"] += rec
            cat["kernel_rest"] += kf + kb - rec
            cat["projection"] += proj
            cat["glue"] += fwd + bwd - kf - kb - proj
        else:
            cat["other_layers"] += fwd + bwd
        per_node[name] = row
    book = {k[0]: v for k, v in acc.items() if k[0].startswith("(")}
    cat["bookkeeping"] = sum(book.values())
    cat["python"] = total - sum(v for k, v in cat.items() if k != "python")
    return {"profiled_step_s": total, "categories": cat, "nodes": per_node, "bookkeeping": book}


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
                          f"rows split {row['split']} ways)"
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
        with BackgroundLoad() as bg:
            results[wl.name] = profile_workload(wl, steps, warmup)
        results[wl.name]["background_cpu_share"] = bg.share
        print(format_profile(wl.name, results[wl.name]), flush=True)
        if (bg.share or 0) > 0.1:
            print(f"  (other processes used {100 * bg.share:.0f}% of the CPU meanwhile: noisy)", flush=True)
    doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "threads": args.threads, "steps": steps,
           "workloads": results}
    out_path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nprofile: {out_path}")
    return 0
