"""attn-seq2seq with the attention layer's NumPy route against its compiled kernel, A/B in one
process: the two routes alternate (batches of calls, the order swapped every round) and the
medians are reported, with the time spent inside the attention layer itself.

`python bench/attention_ab.py [THREADS] [ROUNDS]` (threads: OMP_NUM_THREADS,
NUMBA_NUM_THREADS and RNNDSL_NUM_THREADS, set before rnndsl is imported).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

THREADS = sys.argv[1] if len(sys.argv) > 1 else "1"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "RNNDSL_NUM_THREADS"):
    os.environ[var] = THREADS
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import rnndsl  # noqa: E402
from bench.workloads import BY_NAME  # noqa: E402
from rnndsl.runtime import cpu as engine  # noqa: E402
from rnndsl.runtime.cpu import attention  # noqa: E402

CALLS = 10          # calls a batch


def main() -> None:
    wl = BY_NAME["attn-seq2seq"]
    x, y = wl.make_data(np.random.default_rng(0))
    m = rnndsl.compile(wl.spec, dtype="float32", seed=0)
    m.configure(loss="sparse_categorical_crossentropy", optimizer=rnndsl.train.optimizers.SGD(learning_rate=0.01),
                from_logits=True)
    inside = {"fwd": 0.0, "bwd": 0.0}

    def timed(run):
        def forward(*args):
            t = time.perf_counter()
            outs, backprop = run(*args)
            inside["fwd"] += time.perf_counter() - t

            def timed_backprop(d):
                t = time.perf_counter()
                r = backprop(d)
                inside["bwd"] += time.perf_counter() - t
                return r
            return outs, timed_backprop
        return forward

    routes = {"numpy": timed(attention.forward_numpy), "kernel": timed(attention.forward)}
    keys = ("predict ms", "layer us", "train ms", "layer fwd us", "layer bwd us")
    res = {(r, k): [] for r in routes for k in keys}
    for name in routes:                                     # compile and warm up
        engine.FORWARD["attention"] = routes[name]
        for _ in range(5):
            m.predict_on_batch(x)
            m.train_on_batch(x, y)
    for k in range(ROUNDS):
        for name in (routes if k % 2 == 0 else list(routes)[::-1]):
            engine.FORWARD["attention"] = routes[name]
            inside["fwd"] = inside["bwd"] = 0.0
            t = time.perf_counter()
            for _ in range(CALLS):
                m.predict_on_batch(x)
            res[(name, "predict ms")].append((time.perf_counter() - t) / CALLS * 1e3)
            res[(name, "layer us")].append(inside["fwd"] / CALLS * 1e6)
            inside["fwd"] = inside["bwd"] = 0.0
            t = time.perf_counter()
            for _ in range(CALLS):
                m.train_on_batch(x, y)
            res[(name, "train ms")].append((time.perf_counter() - t) / CALLS * 1e3)
            res[(name, "layer fwd us")].append(inside["fwd"] / CALLS * 1e6)
            res[(name, "layer bwd us")].append(inside["bwd"] / CALLS * 1e6)
    engine.FORWARD["attention"] = attention.forward
    print(f"threads {THREADS}, {ROUNDS} rounds of {CALLS} calls, medians; load average {os.getloadavg()[0]:.2f}")
    for name in routes:
        print(f"  {name:6s} " + ", ".join(f"{k} {np.median(res[(name, k)]):.3f}" if "ms" in k else
                                          f"{k} {np.median(res[(name, k)]):.0f}" for k in keys))


if __name__ == "__main__":
    main()
