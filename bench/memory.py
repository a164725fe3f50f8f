"""Peak memory of one training step, rnndsl and PyTorch, each (workload, framework) in a
subprocess of its own (`python bench/run.py --memory`, on by default; `--no-memory` skips it).

In the subprocess (`run.py --mem-point`), after the thread settings of the comparison:

1. build the framework's runner for the workload (bench/peers.py) and take a train step:
   compilation (or numba's cache), thread pools, the allocator's first arenas;
2. drop that runner and build a fresh one from the same seed, so that what a first train
   step allocates and then keeps (rnndsl's reused step arrays, PyTorch's gradients) is
   counted, as it would be in a fresh training run;
3. reset the kernel's peak-RSS mark (`echo 5 > /proc/self/clear_refs`), note the resident
   size (VmRSS), take one train step: the peak is VmHWM minus that baseline, in MB (10^6
   bytes). Where clear_refs is not available the peak is ru_maxrss minus the baseline,
   which can only over-state it (bench/scaling.py does the same);
4. a second step's rise is recorded too (`steady_mb`: what a step needs once the first
   step's arrays are there).

Both frameworks run with MALLOC_MMAP_THRESHOLD_=65536: glibc then maps every block of 64
KiB or more on its own and unmaps it when freed, instead of raising the threshold as blocks
are freed and keeping freed memory resident in its heap, where the fresh runner's step
would reuse it without the resident size moving. The weights and the data are in the
baseline for both (rnndsl's weights are made before it: a model makes them on first use,
and a wide layer's orthogonal initialisation, a QR, would otherwise be counted as the step's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("rnndsl", "torch")
MMAP_THRESHOLD = "65536"


def _runner(framework: str, wl, x, y, threads: int):
    from bench import peers

    if framework == "rnndsl":
        return peers.rnndsl_runner(wl, x, y)
    torch = peers.torch_module()
    torch.set_num_threads(threads)
    return peers.torch_runner(torch, wl, x, y)


def run_point(spec: str) -> int:
    """Subprocess side: one workload, one framework; prints one JSON line."""
    import gc
    import resource

    import numpy as np

    from bench.scaling import _reset_peak, _status
    from bench.workloads import BY_NAME

    p = json.loads(spec)
    wl, framework, threads = BY_NAME[p["workload"]], p["framework"], p.get("threads", 2)
    x, y = wl.make_data(np.random.default_rng(0))
    warm = _runner(framework, wl, x, y, threads)
    warm.train_mode()
    warm.train()
    del warm
    gc.collect()
    r = _runner(framework, wl, x, y, threads)
    r.train_mode()
    if framework == "rnndsl":
        # rnndsl makes a model's weights when they are first needed (the first train step):
        # they belong in the baseline, as PyTorch's, made by its module's constructor, do
        r.model.get_weights()
    gc.collect()
    exact = _reset_peak()
    base = _status().get("VmRSS", 0)
    t0 = time.perf_counter()
    r.train()
    first_s = time.perf_counter() - t0
    if exact:
        peak = _status().get("VmHWM", 0) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    steady = None
    if exact:
        gc.collect()
        _reset_peak()
        base2 = _status().get("VmRSS", 0)
        r.train()
        steady = _status().get("VmHWM", 0) - base2
    print(json.dumps({"workload": wl.name, "framework": framework, "peak_mb": peak / 1e6,
                      "steady_mb": None if steady is None else steady / 1e6,
                      "baseline_rss_mb": base / 1e6, "peak_exact": exact, "first_step_s": first_s}))
    return 0


def _one(workload: str, framework: str, threads: int, timeout: float) -> dict:
    point = {"workload": workload, "framework": framework, "threads": threads}
    cmd = [sys.executable, str(HERE / "run.py"), "--threads", str(threads), "--mem-point", json.dumps(point)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0][:300]}"}
    return json.loads(lines[-1])


def measure(wls, frameworks, threads: int, timeout: float = 300) -> dict:
    """workload name -> framework -> the subprocess's figures (or {"error": ...}); batch
    workloads only (the stream step does not train)."""
    out = {}
    for wl in wls:
        if wl.kind != "batch":
            continue
        t0 = time.perf_counter()
        got = out[wl.name] = {fw: _one(wl.name, fw, threads, timeout) for fw in frameworks}
        shown = ", ".join(f"{fw} " + (f"{g['peak_mb']:.1f} MB" if "peak_mb" in g else g["error"][:80])
                          for fw, g in got.items())
        print(f"  {wl.name:<12} train-step peak: {shown} ({time.perf_counter() - t0:.0f}s)", flush=True)
    return out
