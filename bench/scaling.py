"""rnndsl time and peak memory of an LSTM step against sequence length and hidden size.

`python bench/run.py --scaling [--quick] [--json PATH]`

Model: `input x: float[?, 32] | lstm(H) | dense(10)`, batch 8, 32 features.
Points: sequence length 100, 1,000, 10,000 at H = 64, and H = 64, 128, 256, 512,
1024 at 100 steps. Each point and mode (inference: predict_on_batch; train:
one forward + BPTT + SGD step) runs in its own subprocess:

1. compile the model and run it once on a 2-step batch (numba compilation, warm caches),
2. reset the kernel's peak-RSS mark (`echo 5 > /proc/self/clear_refs`) and note
   the resident size,
3. run one step at the point's size: "peak MiB" is the rise of the peak
   resident size (VmHWM) over that baseline: everything the step allocates,
   NumPy and numba alike (tracemalloc would miss the kernels' own arrays),
4. time further steps: the median.

Where clear_refs is not available the peak is the process's whole
ru_maxrss minus the baseline resident size, which can only over-state it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH, FEATURES = 8, 32
SEQ_POINTS = [(100, 64), (1000, 64), (10000, 64)]
HIDDEN_POINTS = [(100, 64), (100, 128), (100, 256), (100, 512), (100, 1024)]


def _status() -> dict:
    out = {}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    for key in ("VmRSS", "VmHWM"):
        m = re.search(key + r":\s+(\d+) kB", text)
        if m:
            out[key] = int(m.group(1)) * 1024
    return out


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_point(spec: str) -> int:
    """Subprocess side: one point, one mode; prints one JSON line."""
    import gc
    import resource

    import numpy as np

    from bench import peers
    from bench.workloads import Workload

    p = json.loads(spec)
    T, H, mode, reps = p["T"], p["H"], p["mode"], p.get("reps", 5)
    rng = np.random.default_rng(0)
    wl = Workload(f"lstm T={T} H={H}", "", f"input x: float[?, {FEATURES}]\noutput x | lstm({H}) | dense(10)\n",
                  BATCH, None, 0)
    x = rng.standard_normal((BATCH, T, FEATURES)).astype(np.float32)
    y = rng.integers(0, 10, BATCH)
    small = x[:, :2].copy()
    r = peers.rnndsl_runner(wl, small, y)
    fn_small = getattr(r, mode)
    fn_small()
    fn_small()
    m = r.model
    if mode == "infer":
        def fn():
            return m.predict_on_batch(x)
    elif hasattr(m, "train_on_batch"):
        def fn():
            return m.train_on_batch(x, y)
    else:
        params, lr = m.executor.params, np.float32(0.01)

        def fn():
            _, grads = m.loss_and_gradients(x, y)
            for q, g in zip(params, grads):
                if g is not None:
                    q -= lr * g
    gc.collect()
    exact = _reset_peak()
    base = _status().get("VmRSS", 0)
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if exact:
        peak = _status().get("VmHWM", 0) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    print(json.dumps({"T": T, "H": H, "mode": mode, "median_s": float(np.median(ts)), "first_s": first,
                      "peak_bytes": int(peak), "baseline_rss_bytes": int(base), "peak_exact": exact,
                      "input_bytes": int(x.nbytes), "reps": reps}))
    return 0


def _one(point: dict, threads: int, timeout: float) -> dict:
    cmd = [sys.executable, str(HERE / "run.py"), "--threads", str(threads), "--point", json.dumps(point)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return {**point, "error": f"timed out after {timeout:.0f}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {**point, "error": f"exit {proc.returncode}: {tail[0][:300]}"}
    return json.loads(lines[-1])


def _mib(b) -> str:
    return "n/a" if b is None else f"{b / 2 ** 20:.1f}"


def _ms(s) -> str:
    if s is None:
        return "n/a"
    v = s * 1e3
    return f"{v:.0f}" if v >= 100 else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def main(args) -> int:
    from bench.run import markdown_table
    from bench.timing import wait_quiet

    out_path = Path(args.json) if args.json else HERE / "scaling.json"
    reps = args.steps or (2 if args.quick else 5)
    points = list(dict.fromkeys(SEQ_POINTS + HIDDEN_POINTS))
    if args.quick:
        points = [(100, 64), (1000, 64), (100, 256)]
    rows, results = [], []
    print(f"rnndsl LSTM scaling: batch {BATCH}, {FEATURES} features, lstm(H) | dense(10), float32, "
          f"{args.threads} threads; one subprocess per point and mode", flush=True)
    for T, H in points:
        got = {}
        for mode in ("infer", "train"):
            if getattr(args, "wait_quiet", 0) > 0:
                wait_quiet(args.wait_quiet)
            res = _one({"T": T, "H": H, "mode": mode, "reps": reps}, args.threads, timeout=300)
            results.append(res)
            got[mode] = res
            if "error" in res:
                print(f"  T={T} H={H} {mode}: {res['error']}", file=sys.stderr)
        inf, tr = got["infer"], got["train"]
        rows.append((f"{T:,}", H, _ms(inf.get("median_s")), _mib(inf.get("peak_bytes")),
                     _ms(tr.get("median_s")), _mib(tr.get("peak_bytes")),
                     "n/a" if tr.get("median_s") is None else f"{1e6 * tr['median_s'] / T:.1f}"))
        print(f"  T={T:>6} H={H:>5}: infer {rows[-1][2]} ms, {rows[-1][3]} MiB; "
              f"train {rows[-1][4]} ms, {rows[-1][5]} MiB", flush=True)
    header = ("steps", "hidden", "infer ms", "infer peak MiB", "train ms", "train peak MiB", "train µs/step")
    print()
    print(markdown_table(header, rows))
    print("\npeak MiB: rise of the peak resident size during one step over the resident size before it")
    doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "threads": args.threads, "batch": BATCH,
           "features": FEATURES, "points": results, "table": {"header": list(header), "rows": rows}}
    out_path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"scaling: {out_path}")
    return 0
