"""Rematerialisation (cells/codegen.py, Plan._rematerialise): forward keeps for every step
only the previous states, the sums of products (written over their block of xp), the
per-row values and the left sides of per-step products; backward computes every other
element-wise value again at each step.

The kernels against the ones that keep every value backward reads (Plan(cell,
remat=False): the kernels before rematerialisation), called directly on random data (odd
units, masks with a padded first step, go_backwards, zero_output_for_mask, recurrent
dropout, 1, 2 and 5 steps; float64 to 1e-12, float32 to float32's digits), and against
central differences in float64 through a model (0 and 1 steps too). Cells: the
layer-normalised LSTM of examples/lnlstm.rnn (bench's "lnlstm"), Keras's GRU, and in
float32 the layer-normalised GRU of examples/lngru.rnn.
"""

import copy
from pathlib import Path

import numpy as np
import pytest

import rnndsl
from rnndsl.cells.codegen import Plan
from rnndsl.layers.cells.expr import ROW
from rnndsl.runtime import cells as cell_run

from .common import GRU_AFTER, check

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LNLSTM = (EXAMPLES / "lnlstm.rnn").read_text().split("\ninput ")[0]
# the example's layer-norm GRU: its float32 and float64 kernels are compiled by
# test_cells_reductions.py and the example's training test too
LNGRU = (EXAMPLES / "lngru.rnn").read_text().split("\ninput ")[0]
CELLS = {"lnlstm": LNLSTM, "gru_after": GRU_AFTER, "lngru": LNGRU}
_made: dict = {}


def cell_of(name: str):
    """The cell, made once (its kernels compile once a process)."""
    if name not in _made:
        m = rnndsl.compile(CELLS[name] + f"\ninput x: float[?, 3]\noutput x | rnn({name}(5)) | dense(2)\n")
        _made[name] = m.graph.nodes[1].opts["cell"]
    return _made[name]


def keeping_everything(cell):
    """The same cell compiled by the plan that keeps every value backward reads."""
    key = ("all", cell.name)
    if key not in _made:
        c = copy.copy(cell)
        c.compiled = {"plan": Plan(c, remat=False)}
        _made[key] = c
    return _made[key]


def u_wide(plan, key) -> int:
    """How many (T, B, units) arrays a saved array is: 0 for one value per row."""
    kind, i = key
    if kind == "group":
        return len(plan.groups[i].nodes)
    return 1 if kind == "prev" or plan.cell.graph.nodes[i].width != ROW else 0


def test_lnlstm_keeps_the_states_and_the_gate_sums_in_xp():
    cell = cell_of("lnlstm")
    new, old = Plan(cell), Plan(cell, remat=False)
    assert [k for k in new.saved if u_wide(new, k)] == [("prev", 0), ("prev", 1)]
    # the four gate sums x @ W + h @ U over the four blocks of xp; the means and rsqrt per row
    assert sorted(blk for _, blk in new.in_place.values()) == [0, 1, 2, 3]
    assert len([k for k in new.saved if not u_wide(new, k)]) == 10
    assert sum(u_wide(old, k) for k in old.saved) == 22
    assert new.recomputed and not old.recomputed and not old.in_place
    # what backward reads is all either kept or computed again
    assert new.needed <= new.kept | new.recomputed


def test_gru_keeps_less_than_before():
    cell = cell_of("gru_after")
    new, old = Plan(cell), Plan(cell, remat=False)
    assert sum(u_wide(new, k) for k in new.saved) < sum(u_wide(old, k) for k in old.saved)


def _run(cell, dtype, T, masked, backwards, zero_out, rdrop, seed=0):
    rng = np.random.default_rng(seed)
    B, u, F = 7, 5, 3
    X = rng.normal(size=(T, B, F)).astype(dtype)
    weights = [rng.normal(scale=0.6, size=cell.shape(w, u, [F])).astype(dtype) for w in cell.weights]
    init = [rng.normal(size=(B, u)).astype(dtype) for _ in cell.states]
    mask = None
    if masked:
        mask = rng.random((T, B)) > 0.3
        mask[0, :2] = False                     # a padded first step
    rmask = (rng.random((B, u)) > 0.3) / 0.7 if rdrop else None
    out, final, tape = cell_run.forward(cell, [X], weights, init, mask, rmask, backwards, zero_out)
    dout = rng.normal(size=out.shape).astype(dtype)
    dfinal = [rng.normal(size=(B, u)).astype(dtype) for _ in cell.states]
    dXs, grads, dinit = cell_run.backward(cell, tape, dout, dfinal)
    return [np.array(a, dtype=np.float64) for a in (out, *final, *dXs, *grads, *dinit)]


OPTIONS = [(False, False, False, False), (True, False, False, True), (True, True, True, False),
           (False, True, False, True)]


@pytest.mark.parametrize("name,dtype", [("lnlstm", "float64"), ("gru_after", "float64"), ("lngru", "float32")])
def test_kernels_equal_the_ones_that_keep_everything(name, dtype):
    """float64 against the kernels that keep everything; float32 against the same
    kernels in float64 (each compile of a cell's kernels costs seconds)."""
    cell = cell_of(name)
    ref = keeping_everything(cell) if dtype == "float64" else cell
    tol = 1e-12 if dtype == "float64" else 2e-3
    for T in (1, 2, 5):
        for k, (masked, backwards, zero_out, rdrop) in enumerate(OPTIONS):
            seed = 10 * T + k
            want = _run(ref, "float64", T, masked, backwards, zero_out, rdrop, seed)
            got = _run(cell, dtype, T, masked, backwards, zero_out, rdrop, seed)
            assert len(got) == len(want)
            for i, (g, w) in enumerate(zip(got, want)):
                np.testing.assert_allclose(g, w, rtol=tol, atol=tol,
                                           err_msg=f"T={T}, options {OPTIONS[k]}, item {i}")


R = np.random.default_rng(4)
X = R.normal(size=(3, 4, 2))
Y = np.array([0, 2, 1])
YSEQ = R.integers(0, 3, (3, 4))
IDS = np.array([[3, 4, 0, 0], [0, 2, 3, 4], [5, 0, 0, 0]])      # sample 1 starts padded

GRADIENTS = {
    "seq": ("input x: float[?, 2]\noutput x | rnn(lnlstm(3), seq) | dense(3)", X, YSEQ),
    "one step, dropout, go_backwards": ("input x: float[?, 2]\noutput x | rnn(lnlstm(3), go_backwards=true, "
                                        "dropout=0.2, recurrent_dropout=0.3) | dense(3)", X[:, :1], Y),
    "masked zero_output": ("input x: int[?]\noutput x | embed(8, 2, mask_zero=true) | rnn(lnlstm(3), seq, "
                           "zero_output_for_mask=true) | dense(3)", IDS, YSEQ),
    "zero steps": ("input x: float[?, 2]\noutput x | rnn(lnlstm(3)) | dense(3)", X[:, :0], Y),
}


@pytest.mark.parametrize("name", list(GRADIENTS))
def test_lnlstm_gradients_match_central_differences(name):
    body, x, y = GRADIENTS[name]
    check(LNLSTM + "\n" + body, x, y)


# a sum of products that is also a per-step product's left side: kept in its own array (the
# caller's dV = sum_t a_t^T dM_t reads it after the loop), not over xp
LEFT_SUM = "cell lsum(units) {\n  a = x @ W + h @ U\n  h = tanh(a @ V + a * 0.5)\n}\n"


def test_a_sum_that_a_product_reads_is_kept_in_its_own_array():
    cell = rnndsl.compile(LEFT_SUM + "input x: float[?, 2]\noutput x | rnn(lsum(3)) | dense(3)").graph.nodes[1].opts["cell"]
    p = Plan(cell)
    left = [g.left for g in p.groups if g.left.op != "prev"]
    assert len(left) == 1 and left[0].id not in p.in_place and ("node", left[0].id) in p.saved
    check(LEFT_SUM + "input x: float[?, 2]\noutput x | rnn(lsum(3), seq, go_backwards=true) | dense(3)", X, YSEQ)
