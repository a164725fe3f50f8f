"""Cells with reductions (mean, sum, max, var over units or an input's features), the
functions sqrt, rsqrt, exp, log, abs and softplus, and an output of their own (`output = ...`,
as a Keras cell returning (output, new states)): Keras 3's numbers, central differences
(float64), and the fast CPU routes against the plain float64 route.

One cell, LNC (tests/cells/cell_texts.py: a layer norm, a max, a sum of the previous state,
every new function, an output of its own), compiled in float64; in float32 the example's
layer-norm GRU (examples/lngru.rnn), whose kernels its training test compiles too.
Reductions over an input's features are test_cells_gradients.py's (the cell ODD).
"""

from pathlib import Path

import numpy as np
import pytest

import rnndsl
from rnndsl.kernels.cpu import paths

from .common import LNC, check

# Keras 3.15 (torch backend, float64): keras.layers.RNN around a cell whose call is LNC's
# equations in keras.ops (mean, var, rsqrt, max, sum, softplus, abs, sqrt, exp, log) and
# returns (output, [h, c]), after Masking(0.0), with return_sequences and return_state.
# Keras's torch mean and var keep about float32's digits (1e-7 off NumPy's): hence 1e-6.
KERAS_TOL = 1e-6
KW = np.array([[ 0.0628651105, -0.0660524316,  0.3202113252],
 [ 0.0524500586, -0.2678346866,  0.1807975275]])
KU = np.array([[ 0.6520000226,  0.4735404816, -0.3518676179],
 [-0.6327107355, -0.3116372313,  0.0206629897],
 [-1.1625153873, -0.109395832 , -0.6229554736]])
KG = np.array([0.8535465291, 0.8911482034, 0.9367399687])
KB = np.array([ 0.0823261073,  0.2085026739, -0.0257069326])
KX = np.array([[[ 1.366, -0.665],
  [ 0.352,  0.903],
  [ 0.094, -0.743],
  [ 0.   ,  0.   ]],

 [[ 0.   ,  0.   ],
  [-0.209, -0.159],
  [ 0.   ,  0.   ],
  [ 0.355, -0.654]]])

# padding: sample 0's last step, sample 1's steps 0 and 2 (a padded first step repeats the
# zeros Keras starts the previous output from, a padded step the previous output)
SEQ_MASKED = np.array([[[0.9283209702, 0.7909284716, 1.5167933479],
  [0.9742856295, 0.9489792382, 2.1484029032],
  [1.188248325 , 1.188685714 , 1.0421128538],
  [1.188248325 , 1.188685714 , 1.0421128538]],

 [[0.          , 0.          , 0.          ],
  [0.738623152 , 1.4957736214, 1.0438660906],
  [0.738623152 , 1.4957736214, 1.0438660906],
  [0.7048812532, 0.9230834166, 0.7259790422]]])
H_MASKED = np.array([[-0.2931799097,  0.1638656467,  0.1231198588],
 [-0.0085198673,  0.0821014649,  0.0134926055]])
C_MASKED = np.array([[-0.5133063618,  0.2868998733,  0.2155611783],
 [-0.0158587177,  0.1528220944,  0.0251148775]])
# go_backwards=True: the output sequence in processing order
SEQ_BACKWARDS = np.array([[[0.          , 0.          , 0.          ],
  [0.7885401439, 1.5678652007, 1.011845159 ],
  [0.7343508565, 0.8085354572, 1.032502479 ],
  [0.9978466287, 0.7406170419, 1.726868979 ]],

 [[0.8878746036, 1.5593846661, 0.9170389936],
  [0.8878746036, 1.5593846661, 0.9170389936],
  [1.0344982959, 0.8299378466, 1.1731317134],
  [1.0344982959, 0.8299378466, 1.1731317134]]])
H_BACKWARDS = np.array([[-0.2163441517,  0.0216117464,  0.310915948 ],
 [-0.2139754406,  0.0544502703,  0.1595520396]])
C_BACKWARDS = np.array([[-0.3482243886,  0.0347859515,  0.5004457715],
 [-0.3751233946,  0.0954575449,  0.2797129548]])
# go_backwards=True, zero_output_for_mask=True: zeros at padded steps, the same states
SEQ_BACKWARDS_ZERO = np.array([[[0.          , 0.          , 0.          ],
  [0.7885401439, 1.5678652007, 1.011845159 ],
  [0.7343508565, 0.8085354572, 1.032502479 ],
  [0.9978466287, 0.7406170419, 1.726868979 ]],

 [[0.8878746036, 1.5593846661, 0.9170389936],
  [0.          , 0.          , 0.          ],
  [1.0344982959, 0.8299378466, 1.1731317134],
  [0.          , 0.          , 0.          ]]])


@pytest.mark.parametrize("opts,seq,h,c", [
    ("", SEQ_MASKED, H_MASKED, C_MASKED),
    (", go_backwards=true", SEQ_BACKWARDS, H_BACKWARDS, C_BACKWARDS),
    (", go_backwards=true, zero_output_for_mask=true", SEQ_BACKWARDS_ZERO, H_BACKWARDS, C_BACKWARDS),
], ids=["masked", "go_backwards", "zero_output_for_mask"])
def test_output_and_states_match_keras(opts, seq, h, c):
    m = rnndsl.compile(LNC + f"input x: float[4, 2]\nr = x | masking(0.0) | rnn(lnc(3), seq, state{opts})\n"
                             "output r\noutput h, c = r.state\n", dtype="float64")
    m.set_weights([KW, KU, KG, KB])
    got = m.predict(KX)
    for g, want in zip(got, (seq, h, c)):
        np.testing.assert_allclose(g, want, atol=KERAS_TOL)


R = np.random.default_rng(1)
X = R.normal(size=(3, 4, 2))
Y = np.array([0, 2, 1])
YSEQ = R.integers(0, 3, (3, 4))
IDS = np.array([[3, 4, 0, 0], [0, 2, 3, 4], [5, 0, 0, 0]])      # sample 1 starts padded

GRADIENTS = {
    "seq": ("input x: float[?, 2]\noutput x | rnn(lnc(3), seq) | dense(3)", X, YSEQ),
    "go_backwards dropout": ("input x: float[?, 2]\noutput x | rnn(lnc(3), go_backwards=true, dropout=0.2, "
                             "recurrent_dropout=0.3) | dense(3)", X, Y),
    "masked seq": ("input x: int[?]\noutput x | embed(8, 2, mask_zero=true) | rnn(lnc(3), seq) | dense(3)", IDS, YSEQ),
    "masked zero_output go_backwards": ("input x: int[?]\noutput x | embed(8, 2, mask_zero=true) | rnn(lnc(3), seq, "
                                        "zero_output_for_mask=true, go_backwards=true) | dense(3)", IDS, YSEQ),
    "masked last": ("input x: int[?]\noutput x | embed(8, 2, mask_zero=true) | rnn(lnc(3)) | dense(3)", IDS, Y),
    "bidirectional": ("input x: float[?, 2]\noutput x | bidirectional(rnn(lnc(3), seq)) | dense(3)", X, YSEQ),
    # the cell's half makes x's gradient where the built-in half is told it is not needed
    "bidirectional with an lstm backward half": (
        "input x: float[?, 2]\noutput x | bidirectional(rnn(lnc(3)), backward_layer=lstm(3, go_backwards=true), "
        'merge_mode="sum") | dense(3)', X, Y),
    "bidirectional zero steps": ("input x: float[?, 2]\noutput x | bidirectional(rnn(lnc(3))) | dense(3)", X[:, :0], Y),
    "states out and in": ("input a: float[?, 2]\ninput b: float[?, 2]\nenc = a | rnn(lnc(3), state)\n"
                          "output b | rnn(lnc(3), initial_state=enc.state) | dense(3)", [X, X[:, :3]], Y),
    "zero steps": ("input x: float[?, 2]\noutput x | rnn(lnc(3)) | dense(3)", X[:, :0], Y),
}


@pytest.mark.parametrize("name", list(GRADIENTS))
def test_gradients_match_central_differences(name):
    body, x, y = GRADIENTS[name]
    check(LNC + body, x, y)


def test_zero_steps_give_zeros_not_the_initial_state():
    """Over zero steps a cell's own output is the zeros Keras starts the previous output
    from; its states are the initial ones."""
    m = rnndsl.compile(LNC + "input x: float[?, 2]\ninput h0: float[3]\ninput c0: float[3]\n"
                             "r = x | rnn(lnc(3), state, initial_state=[h0, c0])\noutput r\noutput h, c = r.state\n",
                       dtype="float64")
    h0, c0 = np.ones((2, 3)), np.full((2, 3), 2.0)
    out, h, c = m.predict([np.zeros((2, 0, 2)), h0, c0])
    np.testing.assert_array_equal(out, np.zeros((2, 3)))
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(c, c0)


# the example's layer-norm GRU cell (its comment and cell lines, without the model): its
# float32 kernels are the ones examples/lngru.rnn's training test compiles
LNGRU = (Path(__file__).resolve().parents[2] / "examples" / "lngru.rnn").read_text().split("\ninput ")[0]

FAST = {
    # an embedding read through its projected table, masks (a padded first step), odd units
    "masked embedding": ("input x: int[?]\noutput x | embed(4, 3, mask_zero=true) | rnn(CELL(5), seq) | dense(3)",
                         lambda T: np.random.default_rng(T).integers(0, 4, (7, T)),
                         lambda T: np.random.default_rng(T).integers(0, 3, (7, T))),
    "last output backwards": ("input x: float[?, 3]\noutput x | rnn(CELL(5), go_backwards=true) | dense(3)",
                              lambda T: np.random.default_rng(T).normal(size=(7, T, 3)),
                              lambda T: np.arange(7) % 3),
}


def in_three_parts(kernel, args, rows, work, parts=None):
    """runtime/cells.py's run_rows as a split into three row ranges would run it, the parts
    one after another: the generated kernels' b0..b1 bounds checked without compiling the
    parallel driver for these cells (test_cells_equivalence.py runs that driver)."""
    for p in range(3):
        kernel(*args, rows * p // 3, rows * (p + 1) // 3)


@pytest.mark.parametrize("cell,dtype", [("lnc", "float64"), ("lngru", "float32")])
@pytest.mark.parametrize("name", list(FAST))
def test_fast_routes_equal_the_plain_route(name, cell, dtype, monkeypatch):
    """Outputs, loss and gradients on the default routes (the batch in one part, and in
    three) against the plain float64 route, for sequences of 0, 1, 2 and 5 steps: LNC in
    float64, the example's layer-norm GRU in float32."""
    from rnndsl.runtime import cells as cell_run

    body, make_x, make_y = FAST[name]
    text = (LNC if cell == "lnc" else LNGRU) + body.replace("CELL", cell)
    fast = rnndsl.compile(text, dtype=dtype, seed=3)
    ref = rnndsl.compile(text, dtype="float64", seed=3)
    ref.set_weights([w.astype(np.float64) for w in fast.get_weights()])
    tol = 3e-3 if dtype == "float32" else 1e-9

    def run(m, x, y):
        loss, grads = m.loss_and_gradients(x, y)
        return [m.predict(x), np.array(loss)] + grads

    for T in (0, 1, 2, 5):
        x, y = make_x(T), make_y(T)
        with paths.plain_paths():
            want = run(ref, x, y)
        one = run(fast, x, y)
        with monkeypatch.context() as mp:
            mp.setattr(cell_run, "run_rows", in_three_parts)
            parts = run(fast, x, y)
        for got in (one, parts):
            for k, (g, w) in enumerate(zip(got, want)):
                np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"T={T}, item {k}")


def test_summary_and_description():
    """The layer's output is units wide; its parameters are the cell's weights (Keras counts
    an RNN(cell)'s the same); `rnndsl cell` names the output and the reductions."""
    from rnndsl.cells import describe

    m = rnndsl.compile(LNC + "input x: float[?, 3]\noutput x | rnn(lnc(4), seq) | dense(2)\n")
    assert m.count_params() == (3 * 4 + 4 * 4 + 4 + 4) + (4 * 2 + 2)
    assert [line.split()[2:] for line in m.summary_text().splitlines() if line.startswith("rnn ")] == \
        [["(None,", "None,", "4)", "36", "x"]]
    text = describe(m.graph.nodes[1].opts["cell"])
    assert "states h, c (the layer's output: its `output` equation)" in text
    assert "reductions per step (one value per row): mean(a); var(a); max(c); sum(h)" in text
