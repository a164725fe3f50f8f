"""Every row of the element-wise table (rnndsl/elementwise.py) agrees with itself: its
float64 definition with central differences, and the NumPy dense runtime, the CPU kernels'
act_/dact_, the CUDA templates (run as Python) and the cell compiler's generated kernels
with that definition, on random inputs including large |x|."""

import math

import numpy as np
import pytest

from kernels.harness import act_and_derivative
from rnndsl.layers.cells import define_cells
from rnndsl.elementwise import BY_NAME, CELL, DENSE, KERNEL_OPS, OPS, PY_CONSTANTS, cell_source, py_function
from rnndsl.errors import DiagnosticSink
from rnndsl.kernels.cpu.activations import ACTIVATIONS, activation_code
from rnndsl.kernels.cuda.activations import dispatch_source
from rnndsl.lang.parser import parse
from rnndsl.layers.base import ACTIVATIONS as DENSE_NAMES
from rnndsl.layers.base import RECURRENT_ACTIVATIONS
from rnndsl.runtime import activations as dense
from rnndsl.runtime import cells as cell_run

SCALAR = [op for op in OPS if not op.rowwise]
H = 1e-6


POSITIVE = ("sqrt", "rsqrt", "log")


def _inputs(op):
    """Random x, with large |x|, away from the kinks of relu and abs (0) and hard_sigmoid
    (+-3), in the function's domain (x > 0 for sqrt, rsqrt and log)."""
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(0, 2, 400), rng.normal(0, 40, 100), [-800.0, -60.0, 60.0, 800.0]])
    if op.name == "exp":
        x = x[np.abs(x) < 80]
    if op.name in POSITIVE:
        x = np.abs(x)
    return x[(np.abs(x) > 1e-3) & (np.abs(np.abs(x) - 3.0) > 1e-3)]


def _f(op):
    return np.vectorize(py_function(op.py))


def _df(op):
    return np.vectorize(py_function(op.d, "y"))


@pytest.mark.parametrize("op", SCALAR, ids=lambda op: op.name)
def test_derivative_matches_central_differences(op):
    x = _inputs(op)
    f = _f(op)
    slope = (f(x + H) - f(x - H)) / (2 * H)
    d = _df(op)(x if op.d_from == "x" else f(x))
    np.testing.assert_allclose(d, slope, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("op", [op for op in OPS if DENSE in op.uses], ids=lambda op: op.name)
def test_numpy_dense_runtime_matches(op):
    x = _inputs(op).reshape(-1, 4)
    y = dense.forward(op.name, x)
    dy = np.random.default_rng(1).normal(size=x.shape)
    dz = dense.backward(op.name, y, dy)
    if op.rowwise:      # softmax: against its Jacobian diag(y) - y y^T, row by row
        for r in range(x.shape[0]):
            J = np.diag(y[r]) - np.outer(y[r], y[r])
            np.testing.assert_allclose(dz[r], J @ dy[r], rtol=1e-12, atol=1e-14)
        return
    np.testing.assert_allclose(y, _f(op)(x), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dz, dy * _df(op)(y), rtol=1e-14, atol=1e-15)




@pytest.mark.parametrize("op", KERNEL_OPS, ids=lambda op: op.name)
def test_cpu_kernels_match(op):
    x = _inputs(op)
    y, d = act_and_derivative(x, op.code)
    np.testing.assert_allclose(y, _f(op)(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(d, _df(op)(y))


@pytest.mark.parametrize("op", KERNEL_OPS, ids=lambda op: op.name)
def test_cuda_templates_match(op):
    """The CUDA device dispatch's source, run as Python on float64 scalars."""
    scope = {"math": math, **{k: np.float64(v) for k, v in PY_CONSTANTS.items()}}
    exec(dispatch_source("act", "x", lambda o: o.cuda_forward, ""), scope)
    exec(dispatch_source("dact", "y", lambda o: o.cuda_derivative, ""), scope)
    x = _inputs(op)
    y = np.array([scope["act"](np.float64(v), op.code) for v in x])
    np.testing.assert_allclose(y, _f(op)(x), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal([scope["dact"](v, op.code) for v in y], _df(op)(y))


CELL_OPS = [op for op in OPS if CELL in op.uses]


@pytest.fixture(scope="module")
def every_function_cell():
    """One cell for every cell function (one compile, not one a row): input x_k and state h_k
    of function k, `h_k = f_k(x_k @ W_k) + 0 * h_k`. With W_k = I and one step, the final
    h_k is f_k(x_k) and x_k's gradient f_k'(x_k) times h_k's."""
    names = [f"x{k}" for k in range(len(CELL_OPS))]
    states = [f"h{k}" for k in range(len(CELL_OPS))]
    eqs = "\n".join(f"  h{k} = {op.name}(x{k} @ W{k}) + 0 * h{k}" for k, op in enumerate(CELL_OPS))
    text = f"cell t(units) state({', '.join(states)}) inputs({', '.join(names)}) {{\n{eqs}\n}}\n"
    sink = DiagnosticSink(source=text)
    cell = define_cells(parse(text), sink)["t"]
    assert cell is not None, [d.message for d in sink.items]
    xs = [np.resize(_inputs(op), 100 * 4).reshape(1, 100, 4) for op in CELL_OPS]      # (T, B, u)
    weights = []
    for w in cell.weights:
        weights.append(np.eye(4) if w.kind == "matrix" else np.zeros(4))
    out, final, tape = cell_run.forward(cell, xs, weights, [np.zeros((100, 4))] * len(CELL_OPS))
    dys = [np.random.default_rng(2 + k).normal(size=(100, 4)) for k in range(len(CELL_OPS))]
    dxs, _, _ = cell_run.backward(cell, tape, np.zeros_like(out), dys)
    return {op.name: (xs[k][0], final[k], dys[k], dxs[k][0]) for k, op in enumerate(CELL_OPS)}


@pytest.mark.parametrize("op", CELL_OPS, ids=lambda op: op.name)
def test_generated_cell_code_matches(op, every_function_cell):
    """The cell compiler's generated kernels: f(x) and f'(x) dy against the float64 definition."""
    x, y, dy, dx = every_function_cell[op.name]
    np.testing.assert_allclose(y, _f(op)(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(dx, dy * _df(op)(x if op.d_from == "x" else y), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("op", [op for op in CELL_OPS if op.code is None], ids=lambda op: op.name)
def test_cell_cuda_templates_match(op):
    """A cell-only row's CUDA templates, written in place as the CUDA cell compiler writes
    them, run as Python on float64 scalars."""
    number = repr
    f = eval(f"lambda x: {cell_source(op.cuda_forward, 'x', number)}", {"math": math})   # noqa: S307
    d = eval(f"lambda y: {cell_source(op.cuda_derivative, 'y', number)}", {"math": math})  # noqa: S307
    x = _inputs(op)
    y = np.array([f(float(v)) for v in x])
    np.testing.assert_allclose(y, _f(op)(x), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose([d(float(v)) for v in (x if op.d_from == "x" else y)],
                               _df(op)(x if op.d_from == "x" else y), rtol=1e-14, atol=1e-300)


def test_consumers_read_the_table():
    assert ACTIVATIONS == {op.name: op.code for op in KERNEL_OPS}
    assert [activation_code(n) for n in RECURRENT_ACTIVATIONS] == [BY_NAME[n].code for n in RECURRENT_ACTIVATIONS]
    assert set(DENSE_NAMES) == {op.name for op in OPS if DENSE in op.uses}
    # the codes kernels and caches key on
    assert ACTIVATIONS == {"tanh": 0, "sigmoid": 1, "relu": 2, "linear": 3, "hard_sigmoid": 4}
