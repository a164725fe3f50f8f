"""CUDA engine against the CPU engine: every case runs both and compares.

Run by tests/cuda_engine/test_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1
(numba reads it once, at import, and the pytest process has imported numba
already). On a machine with a GPU, run it directly to check the hardware:

    python tests/cuda_engine/cases.py              # every case, one JSON line each
    python tests/cuda_engine/cases.py lstm gru     # the cases whose names contain a word
    python tests/cuda_engine/cases.py --shard 1/2  # every second case, from the first (runs in parallel)

Each line: {"name", "ok", "error" (largest difference found, relative to the
tolerance's scale), "detail", "seconds"}. Tolerances: 1e-5 in float32,
1e-9 in float64. Shapes are tiny (T <= 3, B = 2, units <= 3) so the
simulator, which runs each CUDA thread as a Python thread, stays fast.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback

import numpy as np

TOL = {"float32": 1e-5, "float64": 1e-9}

R = np.random.default_rng(1)
X = R.normal(size=(2, 3, 2))
Y = np.array([0, 2])
YSEQ = R.integers(0, 3, (2, 3))
XM = X.copy()
XM[1, 2] = XM[0, 1] = 0.5                       # steps masking(0.5) treats as padding
IDS = np.array([[3, 4, 0], [1, 2, 5]])          # second-row padding: masks with mask_zero

# --- layer cases: forward (training and inference) and BPTT gradients ------------------------

# name -> (body between "x |" and "| dense(3)", dtypes)
BODIES = {
    "simplernn": ("simplernn(3)", ("float32", "float64")),
    "simplernn relu backwards seq": ("simplernn(3, seq, activation=relu, go_backwards=true)", ("float32",)),
    "lstm": ("lstm(3)", ("float32", "float64")),
    "lstm seq hard_sigmoid backwards": ('lstm(3, seq, recurrent_activation="hard_sigmoid", go_backwards=true)',
                                        ("float32",)),
    "lstm no bias": ("lstm(3, use_bias=false)", ("float64",)),
    "gru reset_after": ("gru(3)", ("float32", "float64")),
    "gru reset_before": ("gru(3, reset_after=false)", ("float32", "float64")),
    "gru seq backwards": ("gru(3, seq, go_backwards=true)", ("float32",)),
    "gru linear reset_before no bias": ("gru(3, activation=linear, reset_after=false, use_bias=false)",
                                        ("float64",)),
    "gru reset_after no bias": ("gru(2, use_bias=false)", ("float32",)),
    "lstm dropouts": ("lstm(3, dropout=0.3, recurrent_dropout=0.4)", ("float32", "float64")),
    "gru dropouts seq": ("gru(3, seq, dropout=0.3, recurrent_dropout=0.4)", ("float32",)),
    "gru reset_before dropouts": ("gru(2, reset_after=false, dropout=0.3, recurrent_dropout=0.4)", ("float64",)),
    "simplernn dropouts": ("simplernn(3, dropout=0.2, recurrent_dropout=0.3)", ("float32",)),
    "bilstm concat seq": ("bilstm(3, seq)", ("float32", "float64")),
    "bigru sum": ('bigru(2, merge_mode="sum")', ("float32",)),
    "birnn mul seq": ("birnn(2, seq, merge_mode=mul)", ("float64",)),
    "bilstm ave backwards": ("bilstm(2, merge_mode=ave, go_backwards=true)", ("float32",)),
    "bidirectional gru dropouts": ("bidirectional(gru(2, seq, dropout=0.2, recurrent_dropout=0.3))",
                                   ("float32",)),
    "bidirectional backward_layer concat widths": (
        "bidirectional(lstm(2, seq), backward_layer=gru(3, seq, go_backwards=true))", ("float64",)),
    "bidirectional backward_layer ave state": (
        "bidirectional(simplernn(2), backward_layer=lstm(2, go_backwards=true, dropout=0.2), merge_mode=ave)",
        ("float32",)),
    "dense linear relu per step": ("lstm(2, seq) | dense(4, activation=relu)", ("float32",)),
    "dense tanh": ("gru(2) | dense(4, activation=tanh)", ("float64",)),
    "dense sigmoid": ("simplernn(2) | dense(4, activation=sigmoid)", ("float32",)),
    "dense hard_sigmoid": ("simplernn(2) | dense(4, activation=hard_sigmoid)", ("float64",)),
    "batchnorm": ("lstm(2) | batchnorm()", ("float32", "float64")),
    "batchnorm per step no scale": ("simplernn(2, seq) | batchnorm(center=false, scale=false)", ("float64",)),
    "dropout layer": ("lstm(2, seq) | dropout(0.4) | simplernn(2)", ("float32", "float64")),
    "repeat": ("simplernn(2) | repeat(2) | gru(2)", ("float32",)),
}

LAYER_CASES = {}
for _name, (_body, _dtypes) in BODIES.items():
    _text = f"input x: float[?, 2]\noutput x | {_body} | dense(3)"
    for _dt in _dtypes:
        LAYER_CASES[f"{_name} {_dt}"] = (_text, X, None, "sparse_categorical_crossentropy", True, _dt)

LAYER_CASES.update({
    "softmax output probabilities float32": (
        'input x: float[?, 2]\noutput x | gru(2) | dense(3, activation="softmax")', X, Y,
        "sparse_categorical_crossentropy", False, "float32"),
    "mse on sequences float64": ("input x: float[?, 2]\noutput x | gru(3, seq)", X, R.normal(size=(2, 3, 3)),
                                 "mse", False, "float64"),
    "masked embedding bilstm gru float32": (
        "embed(8, 2, mask_zero=true) | bilstm(2, seq) | gru(2, seq) | dense(3)", IDS, YSEQ,
        "sparse_categorical_crossentropy", True, "float32"),
    "masked embedding zero_output backwards float64": (
        "embed(8, 2, mask_zero=true) | lstm(2, seq, zero_output_for_mask=true, go_backwards=true) | "
        "gru(2, reset_after=false) | dense(3)", IDS, Y, "sparse_categorical_crossentropy", True, "float64"),
    "masked embedding simplernn dropouts batchnorm float32": (
        "embed(8, 2, mask_zero=true) | simplernn(2, seq, recurrent_dropout=0.3) | batchnorm() | dense(3)",
        IDS, YSEQ, "sparse_categorical_crossentropy", True, "float32"),
    "masking float sequences float64": (
        "input x: float[?, 2]\noutput x | masking(0.5) | lstm(2, seq) | gru(2) | dense(3)", XM, Y,
        "sparse_categorical_crossentropy", True, "float64"),
    "masking bilstm per-step loss float32": (
        "input x: float[?, 2]\noutput x | masking(0.5) | dense(2) | bilstm(2, seq) | dense(3)", XM, YSEQ,
        "sparse_categorical_crossentropy", True, "float32"),
    "pooling and flatten float64": (
        "input x: float[3, 2]\nh = x | masking(0.5) | gru(2, seq)\na = h | global_avg_pool()\n"
        "m = h | global_max_pool()\nf = h | flatten()\noutput concat(a, m, f) | dense(3)", XM, Y,
        "sparse_categorical_crossentropy", True, "float64"),
    "masked average pooling float32": (
        "embed(8, 2, mask_zero=true) | lstm(2, seq) | global_avg_pool() | dense(3)", IDS, Y,
        "sparse_categorical_crossentropy", True, "float32"),
    "states in and out float64": (
        "input x: float[?, 2]\ninput h0: float[2]\nenc = x | gru(2, seq, state, initial_state=[h0])\n"
        "s = enc | lstm(2)\noutput s\noutput h = enc.state", [X, X[:, 0].copy()], [X[:, 1] * 0.5, X[:, 2].copy()],
        "mse", False, "float64"),
    "bidirectional state parts float32": (
        "input x: float[?, 2]\ninput h0: float[2]\nb = x | bilstm(2, state, initial_state=[h0, h0, h0, h0])\n"
        "output b\noutput b.state", [X, X[:, 1].copy()], [X[:, 0].repeat(2, axis=1)] + [X[:, 2].copy()] * 4,
        "mse", False, "float32"),
    "frozen embedding float32": ("embed(8, 2, trainable=false) | lstm(2) | dense(3)", IDS, Y,
                                 "sparse_categorical_crossentropy", True, "float32"),
    "encoder decoder lstm state float64": (
        "input src: int[?]\ninput tgt: int[?]\nenc = src | embed(8, 2) | lstm(2, state)\n"
        "dec = tgt | embed(9, 2) | lstm(2, seq, initial_state=enc.state)\noutput dec | dense(3)",
        [IDS, IDS[:, ::-1].copy()], YSEQ, "sparse_categorical_crossentropy", True, "float64"),
    "encoder decoder bigru state float32": (
        "input a: float[?, 2]\ninput b: float[?, 2]\nenc = a | bigru(2, state)\n"
        "output b | bigru(2, initial_state=enc.state) | dense(3)", [X, X[:, :2]], Y,
        "sparse_categorical_crossentropy", True, "float32"),
    "concat add fan out float32": (
        "input x: float[?, 2]\na = x | lstm(2, seq)\nb = x | gru(2, seq, go_backwards=true)\n"
        "c = concat(a, b) | simplernn(2)\nd = add(a, b) | lstm(2)\noutput add(c, d) | dense(3)",
        X, Y, "sparse_categorical_crossentropy", True, "float32"),
    "two outputs float64": (
        "input x: float[?, 2]\nh = x | lstm(2, seq)\noutput h | dense(3)\noutput h | gru(2) | dense(3)",
        X, [YSEQ, Y], "sparse_categorical_crossentropy", True, "float64"),
    "attention dot masked scores float64": (
        "input a: int[3]\ninput b: int[3]\nq = a | embed(8, 2, mask_zero=true)\nv = b | embed(8, 2, mask_zero=true)\n"
        "at = attention(q, v, return_attention_scores=true)\noutput at | dense(3)\noutput at.scores",
        [IDS, IDS[:, ::-1].copy()], [R.normal(size=(2, 3, 3)), R.normal(size=(2, 3, 3))], "mse", False, "float64"),
    "attention concat scale key causal dropout float32": (
        "input q: float[3, 2]\ninput v: float[3, 3]\ninput k: float[3, 2]\n"
        'output attention(q, v, k, score_mode="concat", use_scale=true, use_causal_mask=true, dropout=0.3) | dense(3)',
        [X, R.normal(size=(2, 3, 3)), X[:, ::-1].copy()], YSEQ, "sparse_categorical_crossentropy", True, "float32"),
    "attention dot scale scores float32": (
        "input q: float[3, 2]\ninput v: float[3, 2]\na = attention(q, v, use_scale=true, return_attention_scores=true)\n"
        "output a | dense(3)\noutput a.scores", [X, X[:, ::-1].copy()], [R.normal(size=(2, 3, 3)),
                                                                       R.normal(size=(2, 3, 3))],
        "mse", False, "float32"),
    "additive attention masked self causal float64": (
        "input a: int[3]\nh = a | embed(8, 2, mask_zero=true) | dense(2, activation=tanh)\n"
        "output additive_attention(h, h, use_causal_mask=true) | dense(3)", IDS, YSEQ,
        "sparse_categorical_crossentropy", True, "float64"),
    "additive attention scores alone float32": (
        "input q: float[3, 2]\ninput v: float[3, 2]\n"
        "a = additive_attention(q, v, dropout=0.2, return_attention_scores=true)\noutput a.scores",
        [X, X[:, ::-1].copy()], R.normal(size=(2, 3, 3)), "mse", False, "float32"),
    "additive attention key no scale dropout float32": (
        "input q: float[3, 2]\ninput v: float[3, 3]\ninput k: float[3, 2]\n"
        "output additive_attention(q, v, k, use_scale=false, dropout=0.2) | dense(3)",
        [X, R.normal(size=(2, 3, 3)), X[:, ::-1].copy()], YSEQ, "sparse_categorical_crossentropy", True, "float32"),
    "bidirectional merge none float32": (
        "input x: float[?, 2]\nb = x | bilstm(2, seq, merge_mode=none)\noutput b.forward | dense(3)\n"
        "output b.backward | dense(3)", X, [YSEQ, YSEQ], "sparse_categorical_crossentropy", True, "float32"),
})


# --- helpers ---------------------------------------------------------------------------------

class Mismatch(AssertionError):
    pass


class Compare:
    """Collects the largest scaled difference; raises Mismatch past the tolerance."""

    def __init__(self, dtype):
        self.tol = TOL[dtype]
        self.worst = 0.0

    def __call__(self, what, cpu, dev):
        if cpu is None or dev is None:
            if (cpu is None) != (dev is None):
                raise Mismatch(f"{what}: cpu {'None' if cpu is None else 'array'}, "
                               f"cuda {'None' if dev is None else 'array'}")
            return
        if isinstance(cpu, (list, tuple)):
            if len(cpu) != len(dev):
                raise Mismatch(f"{what}: {len(cpu)} vs {len(dev)} items")
            for k, (a, b) in enumerate(zip(cpu, dev)):
                self(f"{what}[{k}]", a, b)
            return
        a, b = np.asarray(cpu, dtype=np.float64), np.asarray(dev, dtype=np.float64)
        if a.shape != b.shape:
            raise Mismatch(f"{what}: shapes {a.shape} vs {b.shape}")
        if not np.all(np.isfinite(b)):
            raise Mismatch(f"{what}: non-finite values on the device")
        err = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))) if a.size else 0.0
        self.worst = max(self.worst, err)
        if err > self.tol:
            raise Mismatch(f"{what}: differs by {err:.3g} (tolerance {self.tol:g})")


def _targets(model, y):
    if y is not None:
        return y
    return YSEQ if model.graph.layers[-1].out.seq else Y


def _pair(text, dtype, seed=2, perturb=True):
    import rnndsl

    cpu = rnndsl.compile(text, dtype=dtype, seed=seed)
    dev = rnndsl.compile(text, dtype=dtype, seed=seed, device="cuda")
    if perturb:                                  # away from the initial values, as the gradient tests
        rng = np.random.default_rng(11)
        w = [v + rng.normal(0, 0.3, v.shape) if "variance" not in n else v
             for n, v in zip(cpu.weight_names(), cpu.get_weights())]
        cpu.set_weights(w)
        dev.set_weights(w)
    return cpu, dev


def _on_device(arr) -> bool:
    return not isinstance(arr, np.ndarray) and hasattr(arr, "copy_to_host")


# --- the cases -------------------------------------------------------------------------------

def layer_case(text, x, y, loss, from_logits, dtype):
    cmp = Compare(dtype)
    cpu, dev = _pair(text, dtype)
    y = _targets(cpu, y)
    xs = x if isinstance(x, list) else [x]
    out = {}
    for name, m in (("cpu", cpu), ("cuda", dev)):
        m.executor.rng = np.random.default_rng(5)   # the same dropout masks on both
        out[name] = m.loss_and_gradients(xs if len(xs) > 1 else xs[0], y, loss=loss, from_logits=from_logits,
                                         return_input_grads=True)
    cmp("loss", out["cpu"][0], out["cuda"][0])
    names = cpu.weight_names()
    for n, a, b in zip(names, out["cpu"][1], out["cuda"][1]):
        cmp(f"gradient of {n}", a, b)
    cmp("input gradients", out["cpu"][2], out["cuda"][2])
    cmp("predict", cpu.predict(xs if len(xs) > 1 else xs[0]), dev.predict(xs if len(xs) > 1 else xs[0]))
    assert all(_on_device(p) for p in dev.executor.params), "weights are not on the device"
    return cmp.worst, f"{len(names)} weight arrays"


# the full model once; the optimizer rules on a small one
TRAIN_TEXT = "input x: float[?, 2]\noutput x | gru(2, seq) | dropout(0.3) | batchnorm() | simplernn(2) | dense(3)"
SMALL_TEXT = "input x: float[?, 2]\noutput x | simplernn(2) | dense(3)"
# scalar (shape ()) and vector attention weights updated on the device
ATTENTION_TRAIN = ("input x: float[?, 2]\nh = x | dense(2)\na = attention(h, x, use_scale=true, score_mode=\"concat\")\n"
                   "b = additive_attention(a, h)\noutput b | global_avg_pool() | dense(3)")
OPTIMIZERS = {
    "adam clipnorm": ("adam", dict(learning_rate=0.05, clipnorm=0.5)),
    "adam amsgrad global_clipnorm": ("adam", dict(learning_rate=0.05, amsgrad=True, global_clipnorm=0.1)),
    "adamw": ("adamw", dict(learning_rate=0.05)),
    "sgd nesterov weight_decay": ("sgd", dict(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "sgd momentum": ("sgd", dict(learning_rate=0.1, momentum=0.5)),
    "sgd clipvalue": ("sgd", dict(learning_rate=0.1, clipvalue=0.01)),
    "rmsprop centered momentum": ("rmsprop", dict(learning_rate=0.01, centered=True, momentum=0.5)),
    "rmsprop": ("rmsprop", dict(learning_rate=0.01)),
    "adagrad": ("adagrad", dict(learning_rate=0.1)),
    # a schedule: the device's update reads the rate of each step (0.05, then 0.025)
    "adamw exponential_decay": ("adamw", dict(learning_rate={"class_name": "ExponentialDecay", "config": {
        "initial_learning_rate": 0.05, "decay_steps": 1, "decay_rate": 0.5}})),
}


def train_case(opt_name, opt_kw, dtype, text=SMALL_TEXT, steps=2):
    """Full train steps (loss, BPTT, optimizer update on the device, batchnorm's deferred
    updates) equal the CPU's; the optimizer's slots stay on the device."""
    from rnndsl.train.optimizers import get_optimizer

    cmp = Compare(dtype)
    cpu, dev = _pair(text, dtype, perturb=False)
    for m in (cpu, dev):
        m.configure(loss="sparse_categorical_crossentropy", optimizer=get_optimizer(opt_name, **opt_kw))
        m.executor.rng = np.random.default_rng(5)
    for step in range(steps):
        lc, ld = cpu.train_on_batch(X, Y), dev.train_on_batch(X, Y)
        cmp(f"loss of step {step + 1}", lc, ld)
        cmp(f"weights after step {step + 1}", cpu.get_weights(), dev.get_weights())
    ex = dev.executor
    slots = ex.opt_slots.slots
    assert all(_on_device(a) for per in slots.values() for a in per.values()), "slots are not on the device"
    ex.sync_optimizer()
    sc, sd = cpu.train_config.optimizer.state_dict(), dev.train_config.optimizer.state_dict()
    assert sorted(sc) == sorted(sd), (sorted(sc), sorted(sd))
    for k in sc:
        cmp(f"optimizer state {k}", sc[k], sd[k])
    cmp("predict after training", cpu.predict(X), dev.predict(X))
    return cmp.worst, f"{steps} steps, {len(sc) - 1} slots"


def overflow_case(dtype="float32"):
    """An update that leaves a weight inf is undone on the device as on the host: weights,
    slots and step count stay those of the last good step."""
    from rnndsl.errors import NonFiniteError
    from rnndsl.train.optimizers import Adam

    cmp = Compare(dtype)
    _, dev = _pair(SMALL_TEXT, dtype, perturb=False)
    opt = Adam(0.05)
    dev.configure(loss="sparse_categorical_crossentropy", optimizer=opt)
    dev.train_on_batch(X, Y)
    weights = dev.get_weights()
    dev.executor.sync_optimizer()
    state = opt.state_dict()
    opt.learning_rate = 1e39
    try:
        dev.train_on_batch(X, Y)
    except NonFiniteError:
        pass
    else:
        raise AssertionError("the overflowing update was not refused")
    cmp("weights after the refused update", weights, dev.get_weights())
    dev.executor.sync_optimizer()
    after = opt.state_dict()
    assert sorted(after) == sorted(state) and opt.iterations == 1, (sorted(after), opt.iterations)
    for k in state:
        cmp(f"optimizer state {k}", state[k], after[k])
    return cmp.worst, "weights, slots and iterations restored"


STATEFUL = "input x: float[?, 2]\noutput x | lstm(3, stateful=true, seq) | bigru(2, stateful=true) | dense(2)"


def stateful_case(dtype="float32"):
    """Stateful layers carry their state on the device from call to call, as the CPU does."""
    cmp = Compare(dtype)
    cpu, dev = _pair(STATEFUL, dtype)
    first_c, first_d = cpu.predict(X), dev.predict(X)
    cmp("first call", first_c, first_d)
    second_c, second_d = cpu.predict(X), dev.predict(X)
    cmp("second call (state carried)", second_c, second_d)
    assert np.abs(second_d - first_d).max() > 1e-4, "the state was not carried"
    states = dev.executor.states
    assert states and all(_on_device(s) for v in states.values() for s in v), "states are not on the device"
    step_c, step_d = cpu.step(X[:, 0]), dev.step(X[:, 0])
    cmp("Model.step", step_c, step_d)
    for m in (cpu, dev):
        m.reset_states()
    cmp("after reset_states", first_c, dev.predict(X))
    h = np.full((2, 3), 0.1)
    c = np.full((2, 3), -0.2)
    one = "input x: float[?, 2]\noutput x | lstm(3, stateful=true) | dense(2)"
    cpu1, dev1 = _pair(one, dtype)
    for m in (cpu1, dev1):
        m.reset_states([h, c])
    cmp("reset_states(states)", cpu1.predict(X), dev1.predict(X))
    for m in (cpu1, dev1):
        m.configure(loss="mse", optimizer="adam")
    for step in range(2):
        cmp(f"stateful train step {step + 1}", cpu1.train_on_batch(X, np.ones((2, 2))),
            dev1.train_on_batch(X, np.ones((2, 2))))
    cmp("weights after stateful training", cpu1.get_weights(), dev1.get_weights())
    return cmp.worst, "carried, step, reset, reset to given states, training"


DECODER = """input src: int[3]
input tgt: int[2]
enc = src | embed(6, 2) | lstm(3, seq, state)
dec = tgt | embed(5, 2) | lstm(3, seq, initial_state=enc.state) | gru(3, seq)
ctx = additive_attention(dec, enc)
output concat(dec, ctx) | dense(5)"""


def decode_case(dtype="float64"):
    """Model.decode steps an attention decoder with its states carried (and beams reordered)
    on the device as on the host."""
    cmp = Compare(dtype)
    cpu, dev = _pair(DECODER, dtype)
    w = [v * 3 for v in cpu.get_weights()]
    for m in (cpu, dev):
        m.set_weights(w)
    src = IDS[:, :3]
    for method in ("greedy", "beam"):
        tc, sc = cpu.decode(src, start=1, max_len=3, method=method, beam_width=3, return_scores=True)
        td, sd = dev.decode(src, start=1, max_len=3, method=method, beam_width=3, return_scores=True)
        if not np.array_equal(tc, td):
            raise Mismatch(f"{method}: tokens {tc.tolist()} on the host, {td.tolist()} on the device")
        cmp(f"{method} scores", sc, sd)
    return cmp.worst, "greedy and beam decoding"


def forecast_case(dtype="float64"):
    """Model.forecast steps stacked recurrent layers on its own predictions, one target fed
    back and one known future feature, on the device as on the host."""
    cmp = Compare(dtype)
    cpu, dev = _pair("input x: float[?, 2]\noutput x | gru(3, seq) | lstm(3) | dense(1)", dtype)
    hist = np.asarray(X, dtype)
    future = np.linspace(-1, 1, len(hist) * 3).reshape(len(hist), 3, 1)
    cmp("forecast", cpu.forecast(hist, 4, targets=[1], future=future),
        dev.forecast(hist, 4, targets=[1], future=future))
    return cmp.worst, "4 steps, one target fed back"


def model_to_case(dtype="float32"):
    """Model.to("cuda") keeps weights, generator and (from the host) the optimizer's slots."""
    import rnndsl

    cmp = Compare(dtype)
    text = "input x: float[?, 2]\noutput x | lstm(3, dropout=0.2) | dense(3)"
    ref = rnndsl.compile(text, dtype=dtype, seed=4).configure(loss="sparse_categorical_crossentropy",
                                                             optimizer="adam")
    moved = rnndsl.compile(text, dtype=dtype, seed=4).configure(loss="sparse_categorical_crossentropy",
                                                               optimizer="adam")
    ref.train_on_batch(X, Y)
    moved.train_on_batch(X, Y)
    assert moved.to("cuda") is moved and moved.device == "cuda"
    assert all(_on_device(p) for p in moved.executor.params)
    cmp("predict after to('cuda')", ref.predict(X), moved.predict(X))
    cmp("train step after to('cuda')", ref.train_on_batch(X, Y), moved.train_on_batch(X, Y))
    cmp("weights", ref.get_weights(), moved.get_weights())
    w = [a * 0.5 for a in ref.get_weights()]
    ref.set_weights(w)
    moved.set_weights(w)
    cmp("set_weights / get_weights", w, moved.get_weights())
    moved.to("cpu")
    assert moved.device == "cpu" and isinstance(moved.executor.params[0], np.ndarray)
    cmp("predict after to('cpu')", ref.predict(X), moved.predict(X))
    return cmp.worst, "cpu -> cuda -> cpu"


class Skip(Exception):
    pass


def hooks_case(dtype="float32"):
    """Needs the hooks of the CUDA report in train/optimizers.py (device_sync), runtime/executor.py
    (export_states/import_states) and model.py (Model.to moving states): checkpoints of an optimizer
    trained on the device, cuda -> cpu with the optimizer's slots, stateful states across Model.to."""
    import tempfile

    import rnndsl
    from rnndsl.runtime.executor import Executor
    from rnndsl.train.optimizers import Optimizer

    if not hasattr(Optimizer, "device_sync") or not hasattr(Executor, "export_states"):
        raise Skip("the hooks in train/optimizers.py and runtime/executor.py are not in place yet")
    cmp = Compare(dtype)
    text = "input x: float[?, 2]\noutput x | gru(2, stateful=true) | dense(3)"

    def make(device):
        return rnndsl.compile(text, dtype=dtype, seed=6, device=device).configure(
            loss="sparse_categorical_crossentropy", optimizer="adam")

    ref, dev = make("cpu"), make("cuda")
    for step in range(2):
        cmp(f"train step {step + 1}", ref.train_on_batch(X, Y), dev.train_on_batch(X, Y))
    sd_ref, sd_dev = ref.train_config.optimizer.state_dict(), dev.train_config.optimizer.state_dict()
    assert sorted(sd_ref) == sorted(sd_dev)
    for k in sd_ref:
        cmp(f"state_dict {k} (synced from the device)", sd_ref[k], sd_dev[k])
    with tempfile.TemporaryDirectory() as d:
        dev.save(f"{d}/m.npz")                     # state_dict() brings the slots home first
        back_dev, back_cpu = rnndsl.load_model(f"{d}/m.npz"), rnndsl.load_model(f"{d}/m.npz")
    back_dev.to("cuda")
    cmp("checkpoint weights", ref.get_weights(), back_dev.get_weights())
    cmp("a step after loading the checkpoint", back_cpu.train_on_batch(X, Y), back_dev.train_on_batch(X, Y))
    cmp("weights after it", back_cpu.get_weights(), back_dev.get_weights())
    cmp("train step 3", ref.train_on_batch(X, Y), dev.train_on_batch(X, Y))
    dev.to("cpu")                                  # slots come home on the next host update
    cmp("step on the cpu after to('cpu')", ref.train_on_batch(X, Y), dev.train_on_batch(X, Y))
    cmp("weights", ref.get_weights(), dev.get_weights())
    dev.to("cuda")                                 # and go back up
    cmp("step on the device after to('cuda')", ref.train_on_batch(X, Y), dev.train_on_batch(X, Y))
    cmp("stateful output after the moves", ref.predict(X), dev.predict(X))
    return cmp.worst, "state_dict, checkpoint, cpu <-> cuda with optimizer slots and states"


def unsupported_case():
    """A layer without CUDA kernels (a spec-declared cell reading its input element-wise) is refused
    when the engine is made."""
    import rnndsl
    from rnndsl import DeviceError
    from rnndsl.layers import REGISTRY

    if "rnn" not in REGISTRY:
        raise Skip("this build has no rnn(cell) layer")
    text = ("cell odd(units) {\n  q = (x * x - 0.25) @ Wq\n  h = tanh(h @ U + q)\n}\n"
            "input x: float[?, 2]\noutput x | rnn(odd(2)) | dense(3)")
    m = rnndsl.compile(text, device="cuda")
    try:
        m.predict(X)
    except DeviceError as e:
        assert "no CUDA implementation" in str(e) and "device='cpu'" in str(e), str(e)
        return 0.0, str(e)
    raise Mismatch("an rnn(cell) layer ran on the CUDA engine, which has no kernels for it")


def cases() -> dict:
    """name -> zero-argument callable returning (worst scaled error, detail)."""
    out = {f"layer {k}": (lambda v=v: layer_case(*v)) for k, v in LAYER_CASES.items()}
    for dt in ("float32", "float64"):
        out[f"train full model adam {dt}"] = lambda dt=dt: train_case("adam", {"learning_rate": 0.05}, dt,
                                                                      TRAIN_TEXT)
    for k, (name, kw) in OPTIMIZERS.items():
        out[f"train {k} float32"] = lambda name=name, kw=kw: train_case(name, kw, "float32")
    # (sgd with momentum, not adam: adam's first step, g / (|g| + eps), magnifies the rounding of a
    # gradient near 0 to a weight's whole step)
    out["train attention scalar weights sgd float32"] = lambda: train_case(
        "sgd", {"learning_rate": 0.1, "momentum": 0.5}, "float32", ATTENTION_TRAIN)
    out["overflowing update undone float32"] = overflow_case
    out["stateful float32"] = lambda: stateful_case("float32")
    out["stateful float64"] = lambda: stateful_case("float64")
    out["model to cuda float32"] = lambda: model_to_case("float32")
    out["decode float64"] = decode_case
    out["forecast float64"] = forecast_case
    out["hooks: checkpoint and moves float32"] = lambda: hooks_case("float32")
    out["unsupported layer"] = unsupported_case
    return out


def main(argv) -> int:
    sys.setswitchinterval(1e-4)   # the simulator's block manager polls its threads: switch often
    from numba import cuda

    if not cuda.is_available():
        print(json.dumps({"name": "setup", "ok": False, "error": math.inf,
                          "detail": "no CUDA device: set NUMBA_ENABLE_CUDASIM=1 or run on a GPU"}))
        return 1
    words = argv[1:]
    shard, of = 1, 1
    if "--shard" in words:
        k = words.index("--shard")
        shard, of = map(int, words[k + 1].split("/"))
        del words[k:k + 2]
    failed = 0
    for n, (name, fn) in enumerate(cases().items()):
        if words and not any(w in name for w in words) or n % of != shard - 1:
            continue
        t = time.perf_counter()
        try:
            err, detail = fn()
            rec = {"name": name, "ok": True, "error": err, "detail": detail}
        except Skip as e:
            rec = {"name": name, "ok": True, "skipped": True, "error": 0.0, "detail": str(e)}
        except Exception as e:  # noqa: BLE001 - every failure becomes a report line
            failed += 1
            rec = {"name": name, "ok": False, "error": math.inf,
                   "detail": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"}
        rec["seconds"] = round(time.perf_counter() - t, 3)
        print(json.dumps(rec), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
