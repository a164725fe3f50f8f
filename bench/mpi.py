"""Data-parallel training over MPI: samples per second for 1 and 2 ranks, and the share of a
step spent in the gradients' Allreduce.

`python bench/mpi.py [--ranks 1,2] [--steps 8] [--json bench/mpi.json]`

For each workload it runs one rank on one thread, then for each rank count R
`mpiexec -n R python bench/mpi.py --worker ...` (R = 1: a plain process) with cores / R
threads per rank (rnndsl's default under a launcher). The worker compiles and warms the model with one short fit, then times `fit`
over `steps` global batches (batch_size is the global batch; each rank trains on batch / R
rows). The communication share is the time of one in-place Allreduce of a float64 buffer
of the model's size (what a step sends; timed apart, 50 times, median) over the step's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = {
    # name: (spec, global batch)
    "mnist-lstm": ("input x: float[28, 28]\noutput x | lstm(64) | dense(10)", 512),
    "mnist-lstm-b64": ("input x: float[28, 28]\noutput x | lstm(64) | dense(10)", 64),
    "lstm-256": ("input x: float[50, 64]\noutput x | lstm(256) | dense(10)", 256),
    "small-gru": ("input x: float[20, 8]\noutput x | gru(16) | dense(10)", 64),
}


def worker(name: str, steps: int) -> None:
    import numpy as np

    sys.path.insert(0, str(HERE.parent))
    import rnndsl
    from rnndsl import distributed

    spec, batch = WORKLOADS[name]
    m = rnndsl.compile(spec, seed=0).configure(loss="sparse_categorical_crossentropy", optimizer="sgd")
    rng = np.random.default_rng(0)
    shape = m.graph.nodes[m.graph.inputs[0]].out
    x = rng.normal(size=(batch * steps, shape.steps, shape.features)).astype(np.float32)
    y = rng.integers(0, 10, batch * steps)
    m.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1, verbose=0)        # compile, warm
    comm = distributed.world()
    t0 = time.perf_counter()
    m.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    if comm is not None:
        comm.Barrier()
    seconds = time.perf_counter() - t0
    reduce_s = 0.0
    if comm is not None:
        from mpi4py import MPI

        buf = np.zeros(sum(w.size for w in m.get_weights()) + 4)
        times = []
        for _ in range(50):
            comm.Barrier()
            a = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            times.append(time.perf_counter() - a)
        reduce_s = float(np.median(times))
    if distributed.rank() == 0:
        step = seconds / steps
        print(json.dumps({"workload": name, "ranks": distributed.size(), "batch": batch,
                          "weights": int(sum(w.size for w in m.get_weights())),
                          "samples_per_s": batch * steps / seconds, "step_ms": 1e3 * step,
                          "allreduce_ms": 1e3 * reduce_s, "comm_share": reduce_s / step}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--only", default=",".join(WORKLOADS))
    ap.add_argument("--json", default=str(HERE / "mpi.json"))
    ap.add_argument("--worker")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.steps)
        return
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("bench/mpi.py needs mpiexec: pip install 'rnndsl[mpi]'")
    rows = []
    cores = os.cpu_count() or 1
    # (ranks, threads per rank): one rank on one core (the baseline per core), one rank on all
    # the cores (threads), and R ranks sharing the cores (cores / R threads each)
    configs = [(1, 1)] + [(r, max(1, cores // r)) for r in map(int, a.ranks.split(","))]
    for name in a.only.split(","):
        for r, threads in configs:
            env = {k: v for k, v in os.environ.items() if k != "RNNDSL_NUM_THREADS"}
            cmd = [sys.executable, __file__, "--worker", name, "--steps", str(a.steps)]
            if r > 1:
                cmd = [mpiexec, "-n", str(r)] + cmd
            env["RNNDSL_NUM_THREADS"] = str(threads)
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            row["threads_per_rank"] = threads
            rows.append(row)
            print(f"{name:12s} ranks {r} x {threads} thread(s)  batch {row['batch']:4d}  {row['samples_per_s']:9.0f} samples/s  "
                  f"step {row['step_ms']:7.1f} ms  allreduce {row['allreduce_ms']:.3f} ms "
                  f"({100 * row['comm_share']:.1f}%)", flush=True)
    Path(a.json).write_text(json.dumps({"cores": cores, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
