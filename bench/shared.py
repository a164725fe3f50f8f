"""Training beside busy neighbours: how much rnndsl and PyTorch slow down when every core
also runs another process.

    python bench/shared.py                        # mnist-lstm and text-lstm, alone and beside 2 busy processes
    python bench/shared.py --only mnist-lstm --busy 2 --steps 40
    python bench/shared.py --env GOMP_SPINCOUNT=0  # an rnndsl run with other threading settings

Each measurement runs in a fresh process (so each framework starts its thread pools
under the conditions measured) with the threads of run.py (2), times `--steps` train
steps after a warm-up (the median), first alone, then beside `--busy` processes that
spin in pure Python for the whole measurement. The slowdown is busy / alone. No test
reads these figures: bench/README.md has the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _worker(framework: str, name: str, steps: int, threads: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from bench.run import set_threads

    set_threads(threads)
    import numpy as np

    from bench import peers
    from bench.workloads import WORKLOADS

    wl = next(w for w in WORKLOADS if w.name == name)
    x, y = wl.make_data(np.random.default_rng(0))
    if framework == "rnndsl":
        runner = peers.rnndsl_runner(wl, x, y)
    else:
        torch = peers.torch_module()
        torch.set_num_threads(threads)
        runner = peers.torch_runner(torch, wl, x, y)
    runner.train_mode()
    for _ in range(5):
        runner.train()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        runner.train()
        times.append(time.perf_counter() - t)
    times.sort()
    return {"median_ms": 1e3 * times[len(times) // 2]}


def _measure(framework, name, steps, threads, busy, env) -> float:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        r = subprocess.run([sys.executable, str(Path(__file__)), "--worker", framework, name, str(steps),
                            str(threads)], capture_output=True, text=True, env={**os.environ, **env}, timeout=600)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    if r.returncode != 0:
        raise RuntimeError(f"{framework} {name}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["median_ms"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="mnist-lstm,text-lstm")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--frameworks", default="rnndsl,torch")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the rnndsl processes")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        framework, name, steps, threads = a.worker
        print(json.dumps(_worker(framework, name, int(steps), int(threads))))
        return 0
    env = dict(kv.split("=", 1) for kv in a.env)
    print(f"{a.busy} busy processes beside each run; {a.threads} threads; median of {a.steps} train steps; "
          f"rnndsl env {env or '(default)'}")
    print(f"| workload | framework | alone ms | beside {a.busy} busy ms | slowdown |")
    print("|---|---|---|---|---|")
    for name in a.only.split(","):
        for fw in a.frameworks.split(","):
            e = env if fw == "rnndsl" else {}
            alone = _measure(fw, name, a.steps, a.threads, 0, e)
            busy = _measure(fw, name, a.steps, a.threads, a.busy, e)
            print(f"| {name} | {fw} | {alone:.2f} | {busy:.2f} | {busy / alone:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
