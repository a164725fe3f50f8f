"""Model.step's compiled path (rnndsl.runtime.stepper) against the batch path, step by step,
while the weights and states change between steps."""

import numpy as np
import pytest

import rnndsl
from rnndsl.kernels.cpu.packed import aligned_empty

RNG = np.random.default_rng(5)

CHAINS = [
    "lstm(6, stateful=true)",
    "lstm(6, stateful=true, use_bias=false) | dense(2)",
    "simplernn(5, stateful=true) | dense(3, activation=\"softmax\")",
    "simplernn(5, stateful=true, use_bias=false, activation=relu)",
    "lstm(6, seq, stateful=true, activation=relu, recurrent_activation=hard_sigmoid) | gru(3, stateful=true)",
    # units a multiple of 16: float32 takes the fused row step (kernels/cpu/lstm_fused.py), 80 = 64 + 16
    "lstm(16, stateful=true) | dense(2)",
    "lstm(80, stateful=true, use_bias=false)",
]


def compiled(chain, dtype, seed=1):
    m = rnndsl.compile(f"input x: float[?, 4]\noutput x | {chain}", dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 10)
    m.set_weights([rng.normal(0, 0.5, w.shape) for w in m.get_weights()])
    assert m._step_plan() is not None
    return m


def one_step_reference(m, x_t):
    """The output of one step from m's current weights and carried states, through
    predict_on_batch of a separate model (the batch kernels, not the stepper)."""
    ref = rnndsl.compile(m.source, dtype=m.dtype)
    ref.set_weights(m.get_weights())
    ex, rex = m.executor, ref.executor
    for n in m.graph.nodes:
        if n.id in ex.states:
            rex.states[n.id] = tuple(np.array(s, copy=True) for s in ex.states[n.id])
            rex.state_batch[n.id] = x_t.shape[0]
    return ref.predict_on_batch(x_t[:, None])


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("chain", CHAINS)
def test_steps_equal_the_batch_path_while_weights_change(chain, dtype):
    m = compiled(chain, dtype)
    x = RNG.normal(size=(2, 6, 4)).astype(dtype)
    outs = []
    for t in range(6):
        if t == 2:      # set_weights writes into the arrays the stepper reads
            m.set_weights([w * 0.7 + 0.1 for w in m.get_weights()])
        if t == 4:      # an optimizer step updates them in place
            grads = [np.full_like(w, 0.05) for w in m.get_weights()]
            m.executor.apply_update(SGD(), grads)
        want = one_step_reference(m, x[:, t])
        got = m.step(x[:, t])
        np.testing.assert_allclose(got, want, **tol(dtype))
        outs.append(got)
    # every step returned its own array: the stepper's buffers are not handed out
    assert len({id(o) for o in outs}) == len(outs)
    assert not any(np.shares_memory(a, b) for i, a in enumerate(outs) for b in outs[i + 1:])


def SGD():
    """The optimizer's in-place update of the weights the stepper reads."""
    from rnndsl.train.optimizers import SGD as Plain

    return Plain(0.1)


@pytest.mark.parametrize("chain", CHAINS[:3])
def test_weights_read_back_and_replaced_arrays(chain):
    m = compiled(chain, "float32")
    before = m.get_weights()
    x = RNG.normal(size=(1, 3, 4)).astype(np.float32)
    m.step(x[:, 0])
    # stacking the weights for the stepper changes no value the model reports
    for a, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    # an executor array replaced outright (not written into) is picked up too
    ex = m.executor
    ex.params = [p.copy() * 1.5 for p in ex.params]
    want = one_step_reference(m, x[:, 1])
    np.testing.assert_allclose(m.step(x[:, 1]), want, rtol=1e-5, atol=1e-6)
    ex.params[1] = ex.params[1].copy() * 0.5
    want = one_step_reference(m, x[:, 2])
    np.testing.assert_allclose(m.step(x[:, 2]), want, rtol=1e-5, atol=1e-6)


def test_states_shared_with_predict_and_reset():
    m = compiled("lstm(6, stateful=true) | dense(2)", "float32")
    x = RNG.normal(size=(1, 5, 4)).astype(np.float32)
    whole = rnndsl.compile(m.source, dtype="float32")
    whole.set_weights(m.get_weights())
    # step, batch, step: each continues from the state the other left
    a = m.step(x[:, 0])
    b = m.predict_on_batch(x[:, 1:3])
    c = m.step(x[:, 3])
    np.testing.assert_allclose(a, whole.predict_on_batch(x[:, :1]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, whole.predict_on_batch(x[:, 1:3]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, whole.predict_on_batch(x[:, 3:4]), rtol=1e-5, atol=1e-6)
    # reset_states: zeros, or the states given
    m.reset_states()
    whole.reset_states()
    np.testing.assert_allclose(m.step(x[:, 4]), whole.predict_on_batch(x[:, 4:5]), rtol=1e-5, atol=1e-6)
    h0, c0 = RNG.normal(size=(2, 1, 6)).astype(np.float32)
    m.reset_states([h0, c0])
    whole.reset_states([h0, c0])
    np.testing.assert_allclose(m.step(x[:, 0]), whole.predict_on_batch(x[:, :1]), rtol=1e-5, atol=1e-6)
    # a new batch size needs reset_states first, as for predict_on_batch
    with pytest.raises(rnndsl.DataError, match="batch size"):
        m.step(np.zeros((3, 4), np.float32))
    with pytest.raises(rnndsl.DataError, match="expects one time step"):
        m.step(np.zeros((1, 5), np.float32))


def test_inputs_of_any_layout_and_dtype():
    m = compiled("lstm(6, stateful=true)", "float32")
    ref = compiled("lstm(6, stateful=true)", "float32")
    x = RNG.normal(size=(2, 4, 4))
    for t in range(4):          # float64, strided: converted like predict_on_batch's input
        np.testing.assert_allclose(m.step(x[:, t]), ref.predict_on_batch(x[:, t:t + 1]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(7,), (193, 512), (3, 5)])
def test_aligned_empty(shape):
    a = aligned_empty(shape, np.float32)
    assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.ctypes.data % 64 == 0


def test_step_with_several_inputs_a_custom_cell_and_a_mask():
    """Model.step beyond the compiled chain (issue 18, point 7): two inputs, a custom cell, a
    masking layer; step by step equals the whole sequence at once, masked steps included."""
    text = """cell mgu(units) {
  f  = sigmoid(x @ Wf + h @ Uf + bf)
  hc = tanh(x @ Wh + (f * h) @ Uh + bh)
  h  = (1 - f) * h + f * hc
}
input a: float[?, 3]
input b: float[?, 2]
x = a | rnn(mgu(4), seq, stateful=true)
y = b | masking() | lstm(3, seq, stateful=true)
output concat(x, y) | dense(2)
"""
    m = rnndsl.compile(text, dtype="float64")
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 2))
    B[1, 2] = 0.0                                   # a masked step
    full = m.predict([A, B])
    m.reset_states()
    steps = np.stack([m.step([A[:, t], B[:, t]]) for t in range(5)], axis=1)
    np.testing.assert_allclose(steps, full, atol=1e-12)
    m.reset_states()
    by_name = np.stack([m.step({"a": A[:, t], "b": B[:, t]}) for t in range(5)], axis=1)
    np.testing.assert_array_equal(by_name, steps)
