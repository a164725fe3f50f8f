"""LSTM and GRU declared as cells equal the built-in layers: outputs and gradients, same weights.

The built-ins keep Keras's fused layout (kernel (F, G*u), recurrent_kernel
(u, G*u), bias); a cell has one array per weight in order of first appearance.
The maps below move the built-in weights into the cell's layout and the cell's
gradients back, so both are compared in the built-in layout (float64, 1e-6).
"""

import numpy as np
import pytest

import rnndsl

from .common import GRU_AFTER, GRU_BEFORE, LSTM

TOL = 1e-6
R = np.random.default_rng(3)
X = R.normal(size=(4, 6, 3))
Y = R.integers(0, 3, 4)
YSEQ = R.integers(0, 3, (4, 6))
IDS = np.array([[3, 4, 1, 0, 0, 0], [1, 2, 3, 4, 5, 6], [5, 0, 0, 0, 0, 0], [2, 2, 7, 7, 1, 0]])


def blocks(a, n, axis=-1):
    return np.split(a, n, axis=axis)


def lstm_to_cell(K, U, b):
    out = []
    for k, u, bb in zip(blocks(K, 4), blocks(U, 4), blocks(b, 4)):
        out += [k, u, bb]
    return out


def lstm_from_cell(ws):
    return [np.concatenate(ws[0::3], axis=1), np.concatenate(ws[1::3], axis=1), np.concatenate(ws[2::3])]


def gru_after_to_cell(K, U, b):
    out = []
    for k, u, bi, br in zip(blocks(K, 3), blocks(U, 3), blocks(b[0], 3), blocks(b[1], 3)):
        out += [k, bi, u, br]        # order of first appearance: Wz, bz, Uz, rbz, ...
    return out


def gru_after_from_cell(ws):
    return [np.concatenate(ws[0::4], axis=1), np.concatenate(ws[2::4], axis=1),
            np.stack([np.concatenate(ws[1::4]), np.concatenate(ws[3::4])])]


def gru_before_to_cell(K, U, b):
    out = []
    for k, u, bb in zip(blocks(K, 3), blocks(U, 3), blocks(b, 3)):
        out += [k, u, bb]
    return out


KINDS = {
    # name: (cell text, cell call, built-in call, per-layer weight count (built-in, cell), to, from)
    "lstm": (LSTM, "mylstm", "lstm", (3, 12), lstm_to_cell, lstm_from_cell),
    "gru reset_after": (GRU_AFTER, "gru_after", "gru", (3, 12), gru_after_to_cell, gru_after_from_cell),
    "gru reset_before": (GRU_BEFORE, "gru_before", "gru", (3, 9), gru_before_to_cell, lstm_from_cell),
}


def built_in_call(kind, units, opts):
    extra = ", reset_after=false" if kind == "gru reset_before" else ""
    return f"{KINDS[kind][2]}({units}{extra}{opts})"


def convert(kind, weights, layers):
    """Built-in weights -> the cell model's weights (recurrent layers first, then the rest)."""
    n_bi, _ = KINDS[kind][3]
    to = KINDS[kind][4]
    out = []
    for i in range(layers):
        out += to(*weights[i * n_bi:(i + 1) * n_bi])
    return out + weights[layers * n_bi:]


def back(kind, grads, layers):
    n_bi, n_cell = KINDS[kind][3]
    frm = KINDS[kind][5]
    out = []
    for i in range(layers):
        out += frm(grads[i * n_cell:(i + 1) * n_cell])
    return out + grads[layers * n_cell:]


def same(ga, gb, tol=TOL):
    assert len(ga) == len(gb)
    for i, (p, q) in enumerate(zip(ga, gb)):
        assert p.shape == q.shape, i
        assert np.abs(p - q).max() <= tol * max(1.0, np.abs(p).max()), (i, np.abs(p - q).max())


OPTIONS = {
    "last": ("", Y),
    "seq": (", seq", YSEQ),
    "go_backwards": (", seq, go_backwards=true", YSEQ),
    "dropout": (", dropout=0.3, recurrent_dropout=0.4", Y),
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("opt", list(OPTIONS))
def test_same_outputs_and_gradients(kind, opt):
    opts, y = OPTIONS[opt]
    template = "input x: float[?, 3]\noutput x | CELL | dense(3)"
    ma, mb, la, lb, ga, gb = run_pair(kind, template, X, y, 5, opts)
    assert abs(la - lb) < TOL
    same(ga, gb)
    np.testing.assert_allclose(mb.predict(X), ma.predict(X), atol=TOL)


def run_pair(kind, template, x, y, units, opts, layers=1, dtype="float64"):
    """(built-in model, cell model, losses, gradients in the built-in layout) with the same weights
    and the same dropout masks; template has CELL where the recurrent layer goes."""
    cell_text, cell, _, _, _, _ = KINDS[kind]
    a_text = template.replace("CELL", built_in_call(kind, units, opts))
    b_text = cell_text + template.replace("CELL", f"rnn({cell}({units}){opts})")
    a = rnndsl.compile(a_text, dtype=dtype, seed=0)
    b = rnndsl.compile(b_text, dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    wa = [w + rng.normal(0, 0.3, w.shape) for w in a.get_weights()]
    a.set_weights(wa)
    b.set_weights(convert(kind, wa, layers))
    out = []
    for m in (a, b):
        m.executor.rng = np.random.default_rng(7)
        loss, grads = m.loss_and_gradients(x, y)
        out.append((m, loss, grads))
    (ma, la, ga), (mb, lb, gb) = out
    return ma, mb, la, lb, ga, back(kind, gb, layers)


@pytest.mark.parametrize("kind", list(KINDS))
def test_masked_and_stacked(kind):
    template = "embed(8, 3, mask_zero=true) | CELL | dense(3)"
    cell_text, cell, _, _, _, _ = KINDS[kind]
    for opts, y in ((", seq", YSEQ), (", seq, zero_output_for_mask=true, go_backwards=true", YSEQ), ("", Y)):
        a = rnndsl.compile(template.replace("CELL", built_in_call(kind, 4, opts)), dtype="float64", seed=0)
        b = rnndsl.compile(cell_text + template.replace("CELL", f"rnn({cell}(4){opts})"), dtype="float64", seed=0)
        rng = np.random.default_rng(2)
        wa = [w + rng.normal(0, 0.3, w.shape) for w in a.get_weights()]
        a.set_weights(wa)
        b.set_weights(wa[:1] + convert(kind, wa[1:], 1))
        la, ga = a.loss_and_gradients(IDS, y)
        lb, gb = b.loss_and_gradients(IDS, y)
        assert abs(la - lb) < TOL
        same(ga, gb[:1] + back(kind, gb[1:], 1))       # the embedding comes first in both


@pytest.mark.parametrize("kind", ["lstm", "gru reset_after"])
def test_state_in_and_out(kind):
    """return_state and initial_state: an encoder's final state starts a decoder."""
    template = ("input a: float[?, 3]\ninput b: float[?, 3]\nenc = a | CELL_ENC\n"
                "output b | CELL_DEC | dense(3)")
    cell_text, cell, _, _, _, _ = KINDS[kind]
    a_text = template.replace("CELL_ENC", built_in_call(kind, 4, ", state")).replace(
        "CELL_DEC", built_in_call(kind, 4, ", seq, initial_state=enc.state"))
    b_text = cell_text + template.replace("CELL_ENC", f"rnn({cell}(4), state)").replace(
        "CELL_DEC", f"rnn({cell}(4), seq, initial_state=enc.state)")
    a = rnndsl.compile(a_text, dtype="float64")
    b = rnndsl.compile(b_text, dtype="float64")
    wa = [w + np.random.default_rng(4).normal(0, 0.3, w.shape) for w in a.get_weights()]
    a.set_weights(wa)
    b.set_weights(convert(kind, wa, 2))
    la, ga = a.loss_and_gradients([X, X[:, :4]], YSEQ[:, :4])
    lb, gb = b.loss_and_gradients([X, X[:, :4]], YSEQ[:, :4])
    assert abs(la - lb) < TOL
    same(ga, back(kind, gb, 2))


def test_stateful_carries_the_same_state():
    a = rnndsl.compile("input x: float[?, 3]\noutput x | lstm(4, stateful=true, seq)", dtype="float64")
    b = rnndsl.compile(LSTM + "input x: float[?, 3]\noutput x | rnn(mylstm(4), stateful=true, seq)",
                       dtype="float64")
    b.set_weights(lstm_to_cell(*a.get_weights()))
    for chunk in (X[:, :2], X[:, 2:5], X[:, 5:]):
        np.testing.assert_allclose(b.predict_on_batch(chunk), a.predict_on_batch(chunk), atol=TOL)
    a.reset_states()
    b.reset_states()
    np.testing.assert_allclose(b.predict_on_batch(X), a.predict_on_batch(X), atol=TOL)


def test_bidirectional_equals_built_in():
    a = rnndsl.compile("input x: float[?, 3]\noutput x | bigru(4, seq) | dense(3)", dtype="float64")
    b = rnndsl.compile(GRU_AFTER + "input x: float[?, 3]\noutput x | bidirectional(rnn(gru_after(4), seq)) "
                                   "| dense(3)", dtype="float64")
    wa = a.get_weights()
    b.set_weights(gru_after_to_cell(*wa[:3]) + gru_after_to_cell(*wa[3:6]) + wa[6:])
    la, ga = a.loss_and_gradients(X, YSEQ)
    lb, gb = b.loss_and_gradients(X, YSEQ)
    assert abs(la - lb) < TOL
    same(ga, gru_after_from_cell(gb[:12]) + gru_after_from_cell(gb[12:24]) + gb[24:])


def test_float32_close_to_built_in():
    a = rnndsl.compile("input x: float[?, 3]\noutput x | lstm(8, seq)", dtype="float32")
    b = rnndsl.compile(LSTM + "input x: float[?, 3]\noutput x | rnn(mylstm(8), seq)", dtype="float32")
    b.set_weights(lstm_to_cell(*a.get_weights()))
    ya, yb = a.predict(X), b.predict(X)
    assert yb.dtype == np.float32
    np.testing.assert_allclose(yb, ya, atol=1e-5)


def test_default_initialisers_follow_keras():
    """Same seed, same draws: glorot kernels, orthogonal recurrent kernels, zero biases, forget bias 1."""
    m = rnndsl.compile(LSTM + "input x: float[?, 3]\noutput x | rnn(mylstm(4))")
    inits = [w.init for _, w in m.graph.weight_specs()]
    assert inits == ["glorot_uniform", "orthogonal", "zeros", "glorot_uniform", "orthogonal", "ones"] + \
        ["glorot_uniform", "orthogonal", "zeros"] * 2
    ws = m.get_weights()
    assert np.all(ws[5] == 1) and np.all(ws[2] == 0)
    np.testing.assert_allclose(ws[1] @ ws[1].T, np.eye(4), atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cell_split_across_threads_equals_one_thread(forced_split, dtype):
    """The generated kernels' compiled split driver (rows in parts at once) gives what one
    thread gives: outputs and gradients, masks included."""
    m = rnndsl.compile(LSTM + "input x: int[?]\noutput x | embed(8, 3, mask_zero=true) | rnn(mylstm(4), seq)"
                       " | dense(3)", dtype=dtype)

    def run():
        m.executor.rng = np.random.default_rng(1)
        loss, grads = m.loss_and_gradients(IDS, YSEQ)
        return [m.predict(IDS), np.array(loss)] + grads

    one, split = forced_split(run)
    for a, b in zip(one, split):
        np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == "float32" else 1e-12, atol=1e-7)
