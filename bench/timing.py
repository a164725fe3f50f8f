"""Timing helpers shared by the benchmark modes: timed loops, statistics, the sgemm
ceiling, and a description of the machine.

Import this only after the thread variables are set (run.py does that first).
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import sys
import time

import numpy as np


def stats(ts: list[float]) -> dict:
    a = np.asarray(ts, dtype=np.float64)
    return {
        "n": int(a.size),
        "median": float(np.median(a)),
        "min": float(a.min()),
        "p25": float(np.percentile(a, 25)),
        "p75": float(np.percentile(a, 75)),
        "mean": float(a.mean()),
    }


@contextlib.contextmanager
def gc_paused():
    """The garbage collector off during a timed loop (as timeit does), collected before."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def measure(fn, warmup: int, steps: int, context=contextlib.nullcontext) -> dict:
    """Call fn warmup times (the first call timed on its own: it includes any JIT
    compilation), then time `steps` calls one by one. Seconds."""
    with context():
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        for _ in range(max(0, warmup - 1)):
            fn()
        ts = []
        with gc_paused():
            for _ in range(steps):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
    out = stats(ts)
    out["first_call"] = first
    return out


def measure_interleaved(entries: list, warmup: int, steps: int, chunk: int = 5, pause: float = 0.02) -> dict:
    """Time several functions in alternating rounds of `chunk` calls each, so that a change
    in background load over the run touches them alike (the machine is shared).

    entries: (key, fn, before, context): before() runs ahead of each round (a mode switch),
    context() wraps it (torch.inference_mode). Each fn first gets `warmup` untimed calls, the
    first timed on its own. Returns key -> stats in seconds, or key -> {"error": text} when
    fn raised (it then leaves the rounds).
    """
    out, live = {}, []
    for key, fn, before, context in entries:
        try:
            before()
            with context():
                t0 = time.perf_counter()
                fn()
                first = time.perf_counter() - t0
                for _ in range(max(0, warmup - 1)):
                    fn()
        except Exception as e:                      # noqa: BLE001 - reported, the others go on
            out[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
            continue
        out[key] = {"first_call": first, "ts": []}
        live.append((key, fn, before, context))
    done = 0
    while done < steps and live:
        n = min(chunk, steps - done)
        for entry in list(live):
            key, fn, before, context = entry
            ts = out[key]["ts"]
            try:
                before()
                with context(), gc_paused():
                    for _ in range(n):
                        t0 = time.perf_counter()
                        fn()
                        ts.append(time.perf_counter() - t0)
            except Exception as e:                  # noqa: BLE001
                out[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
                live.remove(entry)
            if pause and len(live) > 1:
                time.sleep(pause)                   # let spinning BLAS/OpenMP workers park
        done += n
    for key, _, _, _ in live:
        first = out[key]["first_call"]
        out[key] = stats(out[key]["ts"])
        out[key]["first_call"] = first
    return out


def blas_threads(n: int):
    """A context holding every loaded BLAS at n threads (rnndsl sets its pools to one thread
    when it runs; the ceiling is measured with all the benchmark's threads)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def sgemm_ceiling(n: int = 2048, reps: int = 20, threads: int | None = None) -> dict:
    """NumPy float32 n x n matmul throughput in GFLOP/s: best and median of `reps` products.
    The ceiling is the best (a peak; on a shared machine the median can be dragged down
    by other processes)."""
    if threads is not None:
        with blas_threads(threads):
            return sgemm_ceiling(n, reps)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    c = np.empty((n, n), np.float32)
    for _ in range(2):
        np.matmul(a, b, out=c)
    ts = []
    with gc_paused():
        for _ in range(reps):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            ts.append(time.perf_counter() - t0)
    flops = 2.0 * n ** 3
    return {"n": n, "gflops": flops / float(np.median(ts)) / 1e9, "gflops_best": flops / min(ts) / 1e9}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_jiffies() -> tuple[float, float] | None:
    """(busy seconds of the whole machine, of this process) so far."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)     # minus idle, iowait
    t = os.times()
    return busy / hz, t.user + t.system


class BackgroundLoad:
    """How busy the other processes kept the machine while a block ran: the share of all
    cores' time that was busy but not ours (0 = quiet, 1 = every core taken by others)."""

    def __enter__(self):
        self.t0, self.j0 = time.perf_counter(), _cpu_jiffies()
        return self

    def __exit__(self, *exc):
        j1 = _cpu_jiffies()
        wall = time.perf_counter() - self.t0
        self.capacity = wall * (os.cpu_count() or 1)          # core-seconds
        if self.j0 is None or j1 is None or wall <= 0:
            self.share = self.others = None
        else:
            self.others = max(0.0, (j1[0] - self.j0[0]) - (j1[1] - self.j0[1]))
            self.share = min(1.0, self.others / self.capacity)
        return False


def wait_quiet(max_s: float, threshold: float = 0.15, window: float = 2.0) -> float | None:
    """Sleep (up to max_s) until other processes use less than `threshold` of the CPU over
    a `window`-second sample; returns the last share seen."""
    share, t_end = None, time.perf_counter() + max_s
    while True:
        with BackgroundLoad() as bg:
            time.sleep(window)
        share = bg.share
        if share is None or share < threshold or time.perf_counter() >= t_end:
            return share


def machine_info(threads: int) -> dict:
    import numba

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "load_average_at_start": load_average(),
    }


def fmt_time(seconds: float | None, unit: str = "ms") -> str:
    """A duration for the table: ms (3 significant-ish digits) or µs."""
    if seconds is None:
        return "n/a"
    v = seconds * (1e3 if unit == "ms" else 1e6)
    if v >= 100:
        s = f"{v:.0f}"
    elif v >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + (" µs" if unit == "us" else "")
