"""Bad input data gets an rnndsl error naming the input, what was expected and what came."""

import numpy as np
import pytest

import rnndsl
from rnndsl import DataError

R = np.random.default_rng(0)


@pytest.fixture(scope="module")
def two_inputs():
    return rnndsl.compile("input src: int[?]\ninput feats: float[?, 3]\nenc = src | embed(10, 4) | lstm(4)\n"
                          "f = feats | gru(4)\noutput concat(enc, f) | dense(2)")


def test_wrong_number_of_inputs(two_inputs):
    with pytest.raises(DataError, match=r"takes 2 input\(s\) \(src, feats\), got 1"):
        two_inputs.predict(R.integers(0, 10, (2, 5)))


def test_wrong_rank(two_inputs):
    with pytest.raises(DataError, match=r"input 'feats' expects shape \(batch, \?, 3\), got \(2, 5\)"):
        two_inputs.predict([R.integers(0, 10, (2, 5)), R.normal(size=(2, 5))])


def test_wrong_feature_size(two_inputs):
    with pytest.raises(DataError, match=r"input 'feats' expects 3 features.*got \(2, 5, 4\)"):
        two_inputs.predict([R.integers(0, 10, (2, 5)), R.normal(size=(2, 5, 4))])


def test_fixed_steps():
    m = rnndsl.compile("input x: float[5, 2]\noutput x | lstm(3)")
    with pytest.raises(DataError, match=r"expects 5 steps.*got \(1, 4, 2\)"):
        m.predict(np.zeros((1, 4, 2)))


def test_float_where_token_ids_expected(two_inputs):
    with pytest.raises(DataError, match=r"input 'src' expects token ids \(integers\), got float values such as \[0.5\]"):
        two_inputs.predict([np.full((2, 5), 0.5), R.normal(size=(2, 5, 3))])


def test_token_id_out_of_range(two_inputs):
    ids = R.integers(0, 10, (2, 5))
    ids[1, 2] = 10
    with pytest.raises(DataError, match=r"token id 10 is out of range for 'embedding' \(vocabulary 10: ids 0..9\)"):
        two_inputs.predict([ids, R.normal(size=(2, 5, 3))])
    ids[1, 2] = -1
    with pytest.raises(DataError, match="token id -1"):
        two_inputs.predict([ids, R.normal(size=(2, 5, 3))])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_in_inputs(two_inputs, bad):
    x = R.normal(size=(2, 5, 3))
    x[1, 3, 2] = bad
    with pytest.raises(DataError, match=r"input 'feats' holds NaN or inf \(first at index \(1, 3, 2\)\)"):
        two_inputs.predict([R.integers(0, 10, (2, 5)), x])


def test_inputs_by_name_and_batch_mismatch(two_inputs):
    with pytest.raises(DataError, match="missing"):
        two_inputs.predict({"src": R.integers(0, 10, (2, 5))})
    with pytest.raises(DataError, match="batch size 3"):
        two_inputs.predict_on_batch({"src": R.integers(0, 10, (2, 5)), "feats": R.normal(size=(3, 5, 3))})


def test_strings_are_rejected(two_inputs):
    with pytest.raises(DataError, match="token ids"):
        two_inputs.predict([np.array([["a", "b"]]), R.normal(size=(1, 2, 3))])


@pytest.mark.parametrize("chain, n", [("lstm(4, stateful=true) | dense(2)", 2), ("gru(4, stateful=true)", 1),
                                      ("simplernn(4, stateful=true)", 1), ("bilstm(4, stateful=true)", 4)])
def test_wrongly_shaped_states_are_refused_by_predict_and_step_alike(chain, n):
    """reset_states(states) with states step() used to broadcast (issue 15): refused when
    given, whatever reads them next; a batch size other than the states' is refused by
    predict and step() with the same DataError."""
    m = rnndsl.compile(f"input x: float[?, 3]\noutput x | {chain}")
    name = {"bilstm": "bidirectional", "simplernn": "simple_rnn"}.get(chain.split("(")[0], chain.split("(")[0])
    for bad, what in [([np.zeros((2, 3))] * n, r"has shape \(2, 3\); expected"),
                      ([np.zeros(4)] * n, r"has shape \(4,\); expected"),
                      ([np.zeros((2, 4))] * (n + 1), rf"has {n} state\(s\).*got {n + 1}"),
                      ([np.zeros((2, 4))] * (n - 1) + [np.zeros((3, 4))], r"has shape \(3, 4\).*with batch 2")
                      if n > 1 else ([np.zeros((0, 4))], r"has shape \(0, 4\)"),
                      (["a"] * n, "is not an array of numbers")]:
        with pytest.raises(DataError, match=rf"reset_states: .*layer '{name}' {what}"):
            m.reset_states(bad)
    m.reset_states([np.ones((1, 4))] * n)          # batch 1: a call with batch 2 is refused
    for call in (lambda: m.predict_on_batch(np.ones((2, 1, 3))), lambda: m.step(np.ones((2, 3)))):
        with pytest.raises(DataError, match=rf"'{name}' holds state for batch size 1, but this call has batch size 2"):
            call()
    m.reset_states([np.full((2, 4), 0.5)] * n)
    a = m.step(np.ones((2, 3)))
    m.reset_states([np.full((2, 4), 0.5)] * n)
    np.testing.assert_allclose(m.predict_on_batch(np.ones((2, 1, 3))), a, rtol=1e-5)


@pytest.mark.parametrize("text,shape", [("input x: float[?, 5]\noutput x | lstm(7) | dense(2)\n", (10**12, 3, 5)),
                                        ("input x: int[?]\noutput x | embed(3, 4) | lstm(7) | dense(2)\n", (10**12, 3))])
def test_a_batch_larger_than_the_machine_is_a_data_error(text, shape):
    """A view of a small array can claim any size (np.broadcast_to): its copy for the model
    would not fit the machine, and the call says so rather than failing in NumPy."""
    model = rnndsl.compile(text)
    x = np.broadcast_to(np.ones(shape[1:], np.float32 if len(shape) == 3 else np.int64), shape)
    with pytest.raises(DataError, match="more than this machine's memory"):
        model.predict_on_batch(x)
    small = np.ascontiguousarray(x[:4])
    assert model.predict_on_batch(small).shape == (4, 2)        # a fitting batch still runs
