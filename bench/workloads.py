"""The benchmark workloads: rnndsl specs, batches, analytic FLOP counts, targets.

Framework-neutral: the PyTorch and Keras equivalents live in peers.py, keyed by
the workload name. Every batch workload is a 10-class classifier trained with
sparse categorical crossentropy on logits; the data is random (only the
shapes matter for timing).

FLOPs are the multiply-adds of the matrix products of one inference step,
counted as 2 FLOPs each: the input projection x_t W and the recurrent
product h_{t-1} U of every recurrent layer (times two for a bidirectional
one), and the dense layer. Embedding look-ups, batch normalisation and the
gate arithmetic are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

CLASSES = 10


def rnn_flops(batch: int, steps: int, features: int, units: int, gates: int, directions: int = 1) -> int:
    """Matmul FLOPs of a recurrent layer over a sequence: x W plus h U at every step."""
    return directions * 2 * batch * steps * gates * units * (features + units)


def dense_flops(rows: int, fin: int, fout: int) -> int:
    return 2 * rows * fin * fout


@dataclass(frozen=True)
class Target:
    """A goal from issue 5. metric: train_ratio, infer_ratio, pct_sgemm or infer_us."""

    metric: str
    op: str            # "<=" or ">="
    value: float

    def met(self, x: float | None) -> bool | None:
        if x is None:
            return None
        return x <= self.value if self.op == "<=" else x >= self.value

    def describe(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass
class Workload:
    name: str
    about: str
    spec: str
    batch: int
    make_data: Callable[[np.random.Generator], tuple]   # rng -> (x, y); x an array or a list of arrays
    flops: int                                         # one inference step
    kind: str = "batch"                                # "batch", or "stream" (one time step, batch 1)
    targets: list[Target] = field(default_factory=list)


def _floats(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _ids(rng, vocab, *shape):
    return rng.integers(0, vocab, shape, dtype=np.int64)


def _labels(rng, *shape):
    return rng.integers(0, CLASSES, shape, dtype=np.int64)


FAST = [Target("train_ratio", "<=", 0.67), Target("infer_ratio", "<=", 0.67)]
PAR = [Target("train_ratio", "<=", 1.0), Target("infer_ratio", "<=", 1.0)]

B = 64

WORKLOADS: list[Workload] = [
    Workload(
        "mnist-lstm", "28x28 rows as a sequence, LSTM(64), batchnorm, 10 classes",
        "input x: float[28, 28]\noutput x | lstm(64) | batchnorm() | dense(10)\n",
        B, lambda r: (_floats(r, B, 28, 28), _labels(r, B)),
        rnn_flops(B, 28, 28, 64, 4) + dense_flops(B, 64, 10),
        targets=FAST),
    Workload(
        "text-lstm", "100 token ids, embed(1000,64), LSTM(128), 10 classes",
        "input x: int[100]\noutput x | embed(1000, 64) | lstm(128) | dense(10)\n",
        B, lambda r: (_ids(r, 1000, B, 100), _labels(r, B)),
        rnn_flops(B, 100, 64, 128, 4) + dense_flops(B, 128, 10),
        targets=[Target("train_ratio", "<=", 0.5), Target("infer_ratio", "<=", 1.0)]),
    Workload(
        "stack-gru", "100 token ids, embed(1000,64), GRU(256, seq), SimpleRNN(128), 10 classes",
        "input x: int[100]\noutput x | embed(1000, 64) | gru(256, seq) | simplernn(128) | dense(10)\n",
        B, lambda r: (_ids(r, 1000, B, 100), _labels(r, B)),
        rnn_flops(B, 100, 64, 256, 3) + rnn_flops(B, 100, 256, 128, 1) + dense_flops(B, 128, 10),
        targets=PAR),
    Workload(
        "bi-lstm", "5 steps of 10 features, BiLSTM(64, seq), BiLSTM(32), 10 classes",
        "input x: float[5, 10]\noutput x | bilstm(64, seq) | bilstm(32) | dense(10)\n",
        B, lambda r: (_floats(r, B, 5, 10), _labels(r, B)),
        rnn_flops(B, 5, 10, 64, 4, 2) + rnn_flops(B, 5, 128, 32, 4, 2) + dense_flops(B, 64, 10),
        targets=FAST),
    Workload(
        "seq2seq", "encoder-decoder, 20 steps each side, LSTM(64) state edge, per-step loss",
        "input src: int[20]\n"
        "input tgt: int[20]\n"
        "enc = src | embed(1000, 64) | lstm(64, state)\n"
        "dec = tgt | embed(2000, 64) | lstm(64, seq, initial_state=enc.state)\n"
        "output dec | dense(10)\n",
        B, lambda r: ([_ids(r, 1000, B, 20), _ids(r, 2000, B, 20)], _labels(r, B, 20)),
        2 * rnn_flops(B, 20, 64, 64, 4) + dense_flops(B * 20, 64, 10),
        targets=FAST),
    Workload(
        "big-lstm", "batch 128, 100 steps of 512 features, LSTM(512), 10 classes",
        "input x: float[100, 512]\noutput x | lstm(512) | dense(10)\n",
        128, lambda r: (_floats(r, 128, 100, 512), _labels(r, 128)),
        rnn_flops(128, 100, 512, 512, 4) + dense_flops(128, 512, 10),
        targets=PAR + [Target("pct_sgemm", ">=", 85.0)]),
    Workload(
        "stream-step", "one step of a stateful LSTM(128) over 64 features, batch 1 (latency)",
        "input x: float[?, 64]\noutput x | lstm(128, stateful=true)\n",
        1, lambda r: (_floats(r, 1, 64), None),
        rnn_flops(1, 1, 64, 128, 4),
        kind="stream",
        targets=[Target("infer_us", "<=", 5.0)]),
]

BY_NAME = {w.name: w for w in WORKLOADS}


def select(only: str | None) -> list[Workload]:
    """Workloads named in a comma-separated list (all when None)."""
    if not only:
        return list(WORKLOADS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from {', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in names]
