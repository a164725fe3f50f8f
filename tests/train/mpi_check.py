"""Run by tests/train/test_distributed.py under `mpiexec -n N` (and once alone): trains tiny
float64 models data-parallel and writes rank 0's weights to an .npz, so the test compares them
with one process's. Cases: a vector output with batch normalisation and a last partial batch,
a masked per-step output with metrics and validation."""

import sys

import numpy as np

import rnndsl
from rnndsl import distributed

VECTOR = "input x: float[5, 3]\noutput x | lstm(6) | batchnorm() | dense(3)"
PER_STEP = "input x: int[7]\noutput x | embed(9, 4, mask_zero=true) | gru(5, seq) | dense(4)"


def data():
    rng = np.random.default_rng(0)
    xv = rng.normal(size=(23, 5, 3))
    yv = rng.integers(0, 3, 23)
    xs = rng.integers(1, 9, size=(21, 7))
    for i in range(21):
        xs[i, rng.integers(3, 8):] = 0          # padded tails: masked steps
    ys = rng.integers(0, 4, size=(21, 7))
    return xv, yv, xs, ys


def main(out, distributed_flag):
    xv, yv, xs, ys = data()
    flag = None if distributed_flag == "auto" else False
    a = rnndsl.compile(VECTOR, dtype="float64", seed=1).configure(
        loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    ha = a.fit(xv, yv, batch_size=8, epochs=3, seed=2, verbose=0, distributed=flag)
    b = rnndsl.compile(PER_STEP, dtype="float64", seed=3).configure(
        loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    hb = b.fit(xs, ys, batch_size=6, epochs=3, seed=4, verbose=0, validation_split=0.25, distributed=flag)
    if distributed.rank() == 0:
        arrays = {f"a{i}": w for i, w in enumerate(a.get_weights())}
        arrays.update({f"b{i}": w for i, w in enumerate(b.get_weights())})
        for h, tag in ((ha, "ha"), (hb, "hb")):
            for k, v in h.history.items():
                arrays[f"{tag}_{k}"] = np.asarray(v)
        arrays["size"] = np.asarray(distributed.size())
        np.savez(out, **arrays)


def fault(how):
    """Rank 1 fails in its second epoch: an exception ("raise") or killed ("kill")."""
    import os
    import signal

    xv, yv, _, _ = data()
    a = rnndsl.compile(VECTOR, dtype="float64", seed=1).configure(loss="sparse_categorical_crossentropy")

    def fail(model, epoch, logs):
        if distributed.rank() == 1 and epoch == 1:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 fails on purpose")

    a.fit(xv, yv, batch_size=8, epochs=50, verbose=0, callbacks=[fail])


if __name__ == "__main__":
    if sys.argv[1] in ("raise", "kill"):
        fault(sys.argv[1])
    else:
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "auto")
