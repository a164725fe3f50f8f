"""NaN and inf in a weight or an initial state reach the outputs (issue 15, point 3).

A broken model must not predict plausible numbers: the fast float32 routes (the fused
LSTM tile's clamped tanh, the rational tanh of kernels/cpu/activations.py, the single-step
path) must give NaN/inf exactly where float64's plain route does.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnndsl
from rnndsl.kernels.cpu.paths import plain_paths
from rnndsl.runtime import activations as runtime_activations

MGU = """cell mgu(units) {
  f  = sigmoid(x @ Wf + h @ Uf + bf)
  hc = tanh(x @ Wh + (f * h) @ Uh + bh)
  h  = (1 - f) * h + f * hc
}
"""

# (spec body after the input, input kind): every layer kind and activation
MODELS = {
    "lstm": "lstm(16, seq)",
    "lstm-last": "lstm(12)",
    "lstm-wide": "lstm(40, seq)",
    "lstm-acts": "lstm(8, seq, activation=relu, recurrent_activation=hard_sigmoid)",
    "bilstm": "bilstm(16, seq)",
    "gru": "gru(9, seq)",
    "gru-v1": "gru(8, seq, reset_after=false)",
    "simplernn": "simplernn(8, seq)",
    "simplernn-relu": "simplernn(8, seq, activation=relu)",
    "cell": "rnn(mgu(8), seq)",
    "dense": "dense(5)",
    "dense-relu": "dense(5, activation=relu)",
    "dense-tanh": "dense(5, activation=tanh)",
    "dense-sigmoid": "dense(5, activation=sigmoid)",
    "dense-hard": "dense(5, activation=hard_sigmoid)",
    "dense-softmax": "lstm(8) | dense(5, activation=softmax)",
    "embed-lstm": "embed(20, 8) | lstm(16)",
    "embed-lstm-seq": "embed(20, 8) | lstm(16, seq)",
}
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # NumPy on inf - inf

RNG = np.random.default_rng(15)
X = RNG.normal(size=(8, 10, 6))
IDS = RNG.integers(0, 20, (8, 10))   # 80 tokens over 20 rows: the projected-table route


def _model(body: str, dtype: str):
    inp = "input x: int[?]" if body.startswith("embed") else "input x: float[?, 6]"
    cell = MGU if "mgu" in body else ""
    return rnndsl.compile(f"{cell}{inp}\noutput x | {body}", dtype=dtype, seed=3)


def _poisoned_outputs(body, k, value, dtype, plain=False):
    m = _model(body, dtype)
    w = m.get_weights()
    w[k] = w[k].copy()
    w[k].flat[w[k].size // 2] = value
    m.set_weights(w)
    x = IDS if body.startswith("embed") else X
    if plain:
        with plain_paths():
            return m.predict_on_batch(x)
    return m.predict_on_batch(x)


def _same_pattern(got, want, what):
    assert np.isnan(want).any() or np.isinf(want).any() or np.isfinite(want).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN where float64 has")
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=f"{what}: inf where float64 has")


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_nonfinite_weight_reaches_the_outputs_as_in_float64(name, value):
    body = MODELS[name]
    n_weights = len(_model(body, "float64").get_weights())
    some_nan = False
    for k in range(n_weights):
        want = _poisoned_outputs(body, k, value, "float64", plain=True)
        some_nan |= bool(np.isnan(want).any())
        for dtype in ("float32", "float64"):
            got = _poisoned_outputs(body, k, value, dtype)
            _same_pattern(got, want, f"{name} {dtype} weight {k} = {value}")
    if value != value:        # a NaN weight always shows
        assert some_nan


def _poisoned_gradients(body, k, dtype, plain=False):
    m = _model(body, dtype)
    w = m.get_weights()
    w[k] = w[k].copy()
    w[k].flat[w[k].size // 2] = np.nan
    m.set_weights(w)
    x = IDS if body.startswith("embed") else X.astype(dtype)
    y = np.zeros(m.predict_on_batch(x[:1]).shape[1:], dtype)[None].repeat(len(x), axis=0)
    with plain_paths(plain):
        loss, grads = m.loss_and_gradients(x, y, loss="mse")
    return loss, grads


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if not n.startswith("dense")])
def test_a_nan_weight_reaches_the_gradients_as_in_float64(name):
    """Every gradient holds NaN where the plain float64 route's does: a kernel that flushes
    tiny values to zero must not flush NaN with them (the fused LSTM BPTT step did: a NaN in
    the input kernel gave a NaN loss and a finite kernel gradient)."""
    body = MODELS[name]
    for k in range(len(_model(body, "float64").get_weights())):
        want_loss, want = _poisoned_gradients(body, k, "float64", plain=True)
        assert np.isnan(want_loss)
        for dtype in ("float32", "float64"):
            loss, got = _poisoned_gradients(body, k, dtype)
            assert np.isnan(loss)
            for j, (g, w) in enumerate(zip(got, want)):
                np.testing.assert_array_equal(np.isnan(g), np.isnan(w),
                                              err_msg=f"{name} {dtype} weight {k} = nan: gradient {j}")


STATEFUL = {
    "lstm": "lstm(16, seq, stateful=true)",
    "lstm-odd": "lstm(12, seq, stateful=true)",
    "gru": "gru(8, seq, stateful=true)",
    "simplernn": "simplernn(8, seq, stateful=true)",
    "cell": "rnn(mgu(8), seq, stateful=true)",
    "bilstm": "bilstm(16, seq, stateful=true)",
}


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_a_nonfinite_initial_state_reaches_the_outputs_as_in_float64(name, value):
    body = STATEFUL[name]
    want = None
    for dtype in ("float64", "float32"):
        for plain in ((True, False) if dtype == "float64" else (False,)):
            m = _model(body, dtype)
            m.predict_on_batch(X[:, :1])                 # learns the state shapes
            node = next(n for n in m.graph.nodes if n.id in m.executor.states)
            states = [np.zeros_like(s) for s in m.executor.states[node.id]]
            for s in states:
                s[1, s.shape[1] // 2] = value
            m.reset_states(states)
            with plain_paths(plain):
                got = m.predict_on_batch(X)
            if want is None:
                want = got
                assert (~np.isfinite(want)).any() or value == np.inf
            _same_pattern(got, want, f"{name} {dtype} plain={plain} state = {value}")


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("chain", ["lstm(16, stateful=true) | dense(3)", "lstm(6, stateful=true)",
                                   "simplernn(5, stateful=true, activation=relu)",
                                   "gru(4, stateful=true) | dense(2, activation=hard_sigmoid)"])
def test_model_step_propagates_nonfinite_weights(chain, value):
    outs = {}
    for dtype in ("float32", "float64"):
        m = rnndsl.compile(f"input x: float[?, 6]\noutput x | {chain}", dtype=dtype, seed=2)
        assert m._step_plan() is not None, "the compiled single-step path"
        w = m.get_weights()
        w[1] = w[1].copy()
        w[1].flat[0] = value                       # the recurrent kernel
        m.set_weights(w)
        outs[dtype] = np.stack([m.step(X[:1, t]) for t in range(4)])
    if value != value:
        assert np.isnan(outs["float64"]).any()
    _same_pattern(outs["float32"], outs["float64"], f"{chain} step, weight = {value}")


CUDA_ACTIVATIONS = """
import json, numpy as np
from numba import cuda
from rnndsl.kernels.cuda.activations import build
out = {}
for dt in (np.float32, np.float64):
    A = build(dt)

    @cuda.jit
    def k(x, y):
        i = cuda.grid(1)
        if i < x.shape[0]:
            for c in range(5):
                y[c, i] = A.act(x[i], c)

    x = np.array([np.nan, np.inf, -np.inf, 0.5], dt)
    y = np.zeros((5, 4), dt)
    k[1, 4](x, y)
    out[np.dtype(dt).name] = [[repr(float(v)) for v in row] for row in y]
print(json.dumps(out))
"""


def test_cuda_activations_propagate_nan_as_the_cpu_ones():
    """The CUDA device activations (numba's simulator) on NaN and +-inf: as on the CPU."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from rnndsl.kernels.cpu.activations import ACTIVATIONS

    root = str(Path(rnndsl.__file__).resolve().parent.parent)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    run = subprocess.run([sys.executable, "-c", CUDA_ACTIVATIONS], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    x = np.array([np.nan, np.inf, -np.inf, 0.5])
    for name, code in ACTIVATIONS.items():
        want = runtime_activations.forward(name, x)
        for dt in ("float32", "float64"):
            row = np.array([float(v) for v in got[dt][code]])
            np.testing.assert_allclose(row, want, rtol=1e-6, err_msg=f"{name} {dt}")
