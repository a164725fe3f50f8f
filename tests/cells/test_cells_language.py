"""Cell definitions in the language: forms, weights and shapes, the generated module, the command line."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnndsl
from rnndsl import caches
from rnndsl.cells import cache
from rnndsl.types import StateType

from .common import INDRNN, LSTM, MGU, TWO

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def sig(z):
    return 1 / (1 + np.exp(-z))


def test_forms_of_a_definition():
    text = """
# an unindented body, a comment in it, ';' between equations, a blank line, and `cell` still a plain name
cell tiny(units) state(h, c) inputs(v) init(b = ones, U = "glorot_uniform") {
z = sigmoid(v @ W + h @ U + b)   # gate
c = z * c + (1 - z) * tanh(v @ V); h = tanh(c) * -1.5e0

}
input x: float[?, 3]
cell = x | rnn(tiny(4), seq)
output cell | dense(2)
"""
    m = rnndsl.compile(text)
    node = m.graph.nodes[1]
    assert node.spec.name == "rnn" and node.spec.display_name(node) == "RNN(tiny)"
    assert [(w.name, w.shape, w.init) for w in node.weights] == [
        ("cell/W", (3, 4), "glorot_uniform"), ("cell/U", (4, 4), "glorot_uniform"), ("cell/b", (4,), "ones"),
        ("cell/V", (3, 4), "glorot_uniform")]
    assert m.predict(np.ones((2, 5, 3))).shape == (2, 5, 2)


def test_weights_shapes_initialisers_and_counts():
    m = rnndsl.compile(MGU + "input x: float[?, 16]\noutput x | rnn(mgu(32), seq) | dense(1)")
    rnn = m.graph.layers[0]
    assert [(w.name, w.shape, w.init) for w in rnn.weights] == [
        ("rnn/Wf", (16, 32), "glorot_uniform"), ("rnn/Uf", (32, 32), "orthogonal"), ("rnn/bf", (32,), "zeros"),
        ("rnn/Wh", (16, 32), "glorot_uniform"), ("rnn/Uh", (32, 32), "orthogonal"), ("rnn/bh", (32,), "zeros")]
    assert m.count_params() == 2 * (16 * 32 + 32 * 32 + 32) + 33
    assert "rnn (RNN(mgu))" in m.summary_text() and "Total params: 3,169" in m.summary_text()
    ind = rnndsl.compile(INDRNN + "input x: float[?, 5]\noutput x | rnn(indrnn(7))").graph.layers[0]
    # a vector that multiplies a state is an element-wise weight; init(w = ones) overrides its glorot default
    assert [(w.name, w.shape, w.init) for w in ind.weights] == [
        ("rnn/W", (5, 7), "glorot_uniform"), ("rnn/w", (7,), "ones"), ("rnn/b", (7,), "zeros")]
    two = rnndsl.compile(TWO + "input a: float[?, 3]\ninput b: float[?, 2]\noutput rnn(two(4), a, b)").graph
    assert [w.shape for w in two.layers[0].weights] == [(3, 4), (2, 4), (4, 4), (4,), (3, 4), (2, 4)]


def test_state_port_and_bidirectional_shapes():
    g = rnndsl.compile(LSTM + "input x: float[?, 3]\nenc = x | rnn(mylstm(4), state)\n"
                              "output x | lstm(4, initial_state=enc.state)").graph
    assert g.nodes[1].state == StateType("mylstm", (("h", 4), ("c", 4)))
    g = rnndsl.compile(MGU + "input x: float[5, 3]\noutput x | bidirectional(rnn(mgu(4), seq)) | dense(2)").graph
    bi = g.layers[0]
    assert bi.out.keras_shape() == (None, 5, 8)
    assert [w.name for w in bi.weights][:2] == ["bidirectional/forward_rnn/Wf", "bidirectional/forward_rnn/Uf"]
    assert len(bi.weights) == 12


def test_forward_equals_the_equations():
    """predict (inference: nothing saved) against NumPy written from the equations."""
    m = rnndsl.compile(MGU + "input x: float[?, 3]\noutput x | rnn(mgu(4), seq, go_backwards=true)",
                       dtype="float64", seed=3)
    Wf, Uf, bf, Wh, Uh, bh = m.get_weights()
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    h = np.zeros((2, 4))
    outs = []
    for t in reversed(range(5)):
        f = sig(x[:, t] @ Wf + h @ Uf + bf)
        hc = np.tanh(x[:, t] @ Wh + (f * h) @ Uh + bh)
        h = (1 - f) * h + f * hc
        outs.append(h)
    np.testing.assert_allclose(m.predict(x), np.stack(outs, axis=1), atol=1e-12)

    m = rnndsl.compile(TWO + "input a: float[?, 3]\ninput b: float[?, 2]\noutput rnn(two(4), a, b)",
                       dtype="float64", seed=1)
    Wa, Wb, U, bz, Va, Vb = m.get_weights()
    a, b = np.random.default_rng(1).normal(size=(2, 6, 3)), np.random.default_rng(2).normal(size=(2, 6, 2))
    h = np.zeros((2, 4))
    for t in range(6):
        z = sig(a[:, t] @ Wa + b[:, t] @ Wb + h @ U + bz)
        h = z * h + (1 - z) * np.tanh(a[:, t] @ Va + b[:, t] @ Vb)
    np.testing.assert_allclose(m.predict([a, b]), h, atol=1e-12)


def test_save_and_load_a_model_with_a_cell(tmp_path):
    m = rnndsl.compile(MGU + "input x: float[?, 3]\noutput x | rnn(mgu(4)) | dense(2)")
    m.save(tmp_path / "m.npz")
    m2 = rnndsl.load_model(tmp_path / "m.npz")
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    np.testing.assert_allclose(m2.predict(x), m.predict(x))


def test_generated_module_is_cached_under_its_hash(tmp_path):
    """The source is written once under its hash; a second process loads numba's compiled kernels."""
    env = {**os.environ, "RNNDSL_CACHE_DIR": str(tmp_path)}
    # the built-in kernels' compiled code where this process keeps it (compiled already)
    shared = caches.cache_folder("numba")
    if shared is not None:
        (tmp_path / "numba").symlink_to(shared)
    script = (
        "import numpy as np, rnndsl\n"
        "m = rnndsl.compile('''" + INDRNN + "input x: float[?, 2]\\noutput x | rnn(indrnn(3)) | dense(2)''')\n"
        "m.loss_and_gradients(np.ones((2, 3, 2)), np.array([0, 1]))\n"
        "cell = m.graph.layers[0].opts['cell']\n"
        "from rnndsl.cells import compiler\n"
        "mod = compiler.kernels(cell)\n"
        "print(mod.__file__)\n"
        "print(sum(mod.cell_forward.stats.cache_hits.values()), sum(mod.cell_backward.stats.cache_hits.values()))\n"
    )
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    path = Path(first.stdout.splitlines()[0])
    assert path.parent == tmp_path / "cells"
    assert path.name == f"cell_{cache.digest(path.read_text())}.py"
    mtime = path.stat().st_mtime_ns
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[1] == "1 1"              # both kernels loaded, not compiled
    assert path.stat().st_mtime_ns == mtime                    # the file was not rewritten


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rnndsl", *args], cwd=ROOT, capture_output=True, text=True)


def test_cli_cell_describes_and_shows(tmp_path):
    r = run_cli("cell", "examples/custom_cell.rnn")
    assert r.returncode == 0, r.stderr
    assert "cell mgu(units): inputs x; state h" in r.stdout
    assert "Uf  (units, units)" in r.stdout and "orthogonal" in r.stdout
    assert "hoisted out of the time loop: x @ [Wf | Wh]" in r.stdout
    assert "products per step: h @ [Uf]; (f * h) @ [Uh]" in r.stdout
    r = run_cli("cell", "examples/custom_cell.rnn", "--show")
    assert r.returncode == 0, r.stderr
    assert "def cell_forward(" in r.stdout and "def cell_backward(" in r.stdout
    assert "@njit(**KERNEL_OPTIONS)" in r.stdout
    compile(r.stdout, "generated.py", "exec")                  # valid Python
    r = run_cli("cell", "examples/custom_cell.rnn", "--name", "mgo")
    assert r.returncode == 2 and "did you mean 'mgu'" in r.stderr
    r = run_cli("cell", "examples/digits.rnn")
    assert r.returncode == 2 and "defines no cell" in r.stderr
    bad = tmp_path / "bad.rnn"
    bad.write_text("cell c(units) {\n  h = tnh(x @ W)\n}\n")
    r = run_cli("cell", str(bad))
    assert r.returncode == 1 and f"{bad}:2:7: error: unknown function 'tnh'" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_custom_cell_example_learns(tmp_path):
    from rnndsl.app.runner import train_spec

    r = train_spec(EXAMPLES / "custom_cell.rnn", epochs=10, quiet=True, out=tmp_path / "c.npz",
                   stream=io.StringIO())
    assert r["test_accuracy"] > 0.85          # chance: 0.1 (full budget: 0.98, as gru(64))
