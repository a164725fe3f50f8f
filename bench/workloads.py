"""The benchmark workloads: rnndsl specs, batches, analytic FLOP counts, targets.

Framework-neutral: the PyTorch and Keras equivalents live in peers.py, keyed by
the workload name. Every batch workload is a 10-class classifier trained with
sparse categorical crossentropy on logits; the data is random (only the
shapes matter for timing).

FLOPs are the multiply-adds of the matrix products of one inference step,
counted as 2 FLOPs each: the input projection x_t W and the recurrent
product h_{t-1} U of every recurrent layer (times two for a bidirectional
one), attention's scores Q K^T and context A V, and the dense layer.
Embedding look-ups, batch and layer normalisation, softmax and the gate
arithmetic are not counted.

Targets are issue 22's (ratio = rnndsl time / best peer time in the same run,
peak training memory rnndsl <= PyTorch on every batch workload).
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


def attention_flops(batch: int, tq: int, tv: int, d: int, dv: int) -> int:
    """Dot attention: scores q_i . k_j (Tq x Tv x d) and context sum_j A_ij v_j (Tq x Tv x dv)."""
    return 2 * batch * tq * tv * (d + dv)


@dataclass(frozen=True)
class Target:
    """A goal from issue 22. metric: train_ratio, infer_ratio, pct_sgemm, infer_us or
    mem_ratio (rnndsl's peak training memory / PyTorch's, see run.py --memory)."""

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


def _targets(train: float | None, infer: float | None, *more: Target, memory: bool = True) -> list[Target]:
    out = ([Target("train_ratio", "<=", train)] if train is not None else []) + \
          ([Target("infer_ratio", "<=", infer)] if infer is not None else []) + list(more)
    return out + ([Target("mem_ratio", "<=", 1.0)] if memory else [])


FAST = _targets(0.5, 0.67)                  # issue 22: twice PyTorch's speed in training, 1.5x in inference
WIDE = _targets(0.8, 1.0)                   # large products: near the sgemm ceiling on both sides
B = 64



def TEXT_DATA(r):
    """text-lstm's data: 100 token ids of 1,000 a row, one label."""
    return _ids(r, 1000, B, 100), _labels(r, B)

# A layer-normalised LSTM (examples/lnlstm.rnn): each gate's pre-activation normalised over the
# units (population variance, epsilon 1e-3), then a gain and a bias of its own; the cell state
# normalised the same way before its tanh. Gate order i, f, g, o; forget bias 1, gains 1.
LNLSTM_CELL = """cell lnlstm(units) state(h, c) init(gi = ones, gf = ones, gg = ones, go = ones, gc = ones, bf = ones) {
  ai = x @ Wi + h @ Ui
  af = x @ Wf + h @ Uf
  ag = x @ Wg + h @ Ug
  ao = x @ Wo + h @ Uo
  i  = sigmoid(gi * (ai - mean(ai)) * rsqrt(var(ai) + 0.001) + bi)
  f  = sigmoid(gf * (af - mean(af)) * rsqrt(var(af) + 0.001) + bf)
  g  = tanh(gg * (ag - mean(ag)) * rsqrt(var(ag) + 0.001) + bg)
  o  = sigmoid(go * (ao - mean(ao)) * rsqrt(var(ao) + 0.001) + bo)
  c  = f * c + i * g
  h  = o * tanh(gc * (c - mean(c)) * rsqrt(var(c) + 0.001) + bc)
}
"""

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
        B, TEXT_DATA,
        rnn_flops(B, 100, 64, 128, 4) + dense_flops(B, 128, 10),
        targets=FAST),
    Workload(
        "text-gru", "100 token ids, embed(1000,64), GRU(128) (reset-after, Keras's default), 10 classes",
        "input x: int[100]\noutput x | embed(1000, 64) | gru(128) | dense(10)\n",
        B, TEXT_DATA,
        rnn_flops(B, 100, 64, 128, 3) + dense_flops(B, 128, 10),
        targets=FAST),
    Workload(
        "stack-gru", "100 token ids, embed(1000,64), GRU(256, seq), SimpleRNN(128), 10 classes",
        "input x: int[100]\noutput x | embed(1000, 64) | gru(256, seq) | simplernn(128) | dense(10)\n",
        B, TEXT_DATA,
        rnn_flops(B, 100, 64, 256, 3) + rnn_flops(B, 100, 256, 128, 1) + dense_flops(B, 128, 10),
        targets=_targets(0.5, 0.5)),
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
        "attn-seq2seq", "seq2seq with dot attention of the decoder over the encoder's outputs "
        "(examples/attention_seq2seq.rnn at seq2seq's sizes), per-step loss",
        "input src: int[20]\n"
        "input tgt: int[20]\n"
        "enc = src | embed(1000, 64) | lstm(64, seq, state)\n"
        "dec = tgt | embed(2000, 64) | lstm(64, seq, initial_state=enc.state)\n"
        "ctx = attention(dec, enc)\n"
        "output concat(dec, ctx) | dense(10)\n",
        B, lambda r: ([_ids(r, 1000, B, 20), _ids(r, 2000, B, 20)], _labels(r, B, 20)),
        2 * rnn_flops(B, 20, 64, 64, 4) + attention_flops(B, 20, 20, 64, 64) + dense_flops(B * 20, 128, 10),
        targets=FAST),
    Workload(
        "lnlstm", "text-lstm with a layer-normalised LSTM(128) declared as a custom cell",
        LNLSTM_CELL + "input x: int[100]\noutput x | embed(1000, 64) | rnn(lnlstm(128)) | dense(10)\n",
        B, TEXT_DATA,
        rnn_flops(B, 100, 64, 128, 4) + dense_flops(B, 128, 10),
        targets=FAST),
    Workload(
        "long", "batch 16, 2,000 steps of 32 features, LSTM(64), 10 classes",
        "input x: float[2000, 32]\noutput x | lstm(64) | dense(10)\n",
        16, lambda r: (_floats(r, 16, 2000, 32), _labels(r, 16)),
        rnn_flops(16, 2000, 32, 64, 4) + dense_flops(16, 64, 10),
        targets=FAST),
    Workload(
        "big-lstm", "batch 128, 100 steps of 512 features, LSTM(512), 10 classes",
        "input x: float[100, 512]\noutput x | lstm(512) | dense(10)\n",
        128, lambda r: (_floats(r, 128, 100, 512), _labels(r, 128)),
        rnn_flops(128, 100, 512, 512, 4) + dense_flops(128, 512, 10),
        targets=_targets(0.8, 1.0, Target("pct_sgemm", ">=", 95.0))),
    Workload(
        "wide", "batch 8, 50 steps of 256 features, LSTM(1024), 10 classes",
        "input x: float[50, 256]\noutput x | lstm(1024) | dense(10)\n",
        8, lambda r: (_floats(r, 8, 50, 256), _labels(r, 8)),
        rnn_flops(8, 50, 256, 1024, 4) + dense_flops(8, 1024, 10),
        targets=WIDE),
    Workload(
        "stream-step", "one step of a stateful LSTM(128) over 64 features, batch 1 (latency)",
        "input x: float[?, 64]\noutput x | lstm(128, stateful=true)\n",
        1, lambda r: (_floats(r, 1, 64), None),
        rnn_flops(1, 1, 64, 128, 4),
        kind="stream",
        targets=[Target("infer_ratio", "<=", 0.15)]),
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
