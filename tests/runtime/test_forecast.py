"""Model.forecast (issue 19, point 2): recursive forecasting over the compiled step, each
prediction fed back as the next step's input features; equal to predict over the history
extended by the forecasts, computed one step per forecast step."""

import numpy as np
import pytest

import rnndsl
from rnndsl.errors import DataError

RNG = np.random.default_rng(0)
HIST = RNG.standard_normal((3, 6, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def any_steps():
    """Stacked recurrent layers over any number of steps: predict takes the extended history."""
    return rnndsl.compile("input x: float[?, 2]\nh = x | gru(5, seq) | lstm(4)\noutput h | dense(2)\n")


@pytest.fixture(scope="module")
def one_target():
    return rnndsl.compile("input x: float[?, 2]\noutput x | simplernn(4, seq) | lstm(3) | dense(1)\n", seed=1)


def _extended_predictions(model, hist, steps, targets, future=None):
    """The forecast by brute force: predict over the whole growing sequence each step."""
    seq, out = hist, []
    for k in range(steps):
        p = model.predict(seq)
        out.append(p)
        row = np.empty((len(hist), 1, hist.shape[2]), np.float32)
        row[:, 0, targets] = p
        others = [j for j in range(hist.shape[2]) if j not in targets]
        if others:
            row[:, 0, others] = future[:, k] if k < future.shape[1] else 0
        seq = np.concatenate([seq, row], 1)
    return np.stack(out, 1)


def test_forecast_is_predict_over_the_extended_history(any_steps):
    got = any_steps.forecast(HIST, 4)
    assert got.shape == (3, 4, 2)
    np.testing.assert_allclose(got, _extended_predictions(any_steps, HIST, 4, [0, 1]), rtol=1e-5, atol=1e-6)
    one = any_steps.forecast(HIST[1], 4)                  # one series: (steps, targets)
    np.testing.assert_allclose(one, got[1], rtol=1e-5, atol=1e-6)


def test_forecast_with_known_future_features(one_target):
    future = RNG.standard_normal((3, 4, 1)).astype(np.float32)
    got = one_target.forecast(HIST, 4, targets=[1], future=future)
    assert got.shape == (3, 4, 1)
    np.testing.assert_allclose(got, _extended_predictions(one_target, HIST, 4, [1], future), rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match=r"the others \(\[0\]\) are not predicted, so their future values must be "
                                        r"given: future=, \(3 or more steps, 1\) per series"):
        one_target.forecast(HIST, 4, targets=[1])
    with pytest.raises(DataError, match=r"future must be \(3 or more steps, 1\) per series \(3 series\)"):
        one_target.forecast(HIST, 4, targets=[1], future=future[:, :2])
    with pytest.raises(DataError, match=r"output 'dense' gives 1 value\(s\) per step and input 'x' takes 2 "
                                        r"feature\(s\): say which"):
        one_target.forecast(HIST, 2)
    with pytest.raises(DataError, match=r"targets must be distinct positions among the 2 features of input 'x' \(0..1\), got \[2\]"):
        one_target.forecast(HIST, 2, targets=[2])


def test_a_declared_window_reads_the_last_steps(any_steps):
    fixed = rnndsl.compile("input x: float[4, 2]\nh = x | gru(5, seq) | lstm(4)\noutput h | dense(2)\n")
    fixed.set_weights(any_steps.get_weights())
    got = fixed.forecast(HIST, 3)
    np.testing.assert_allclose(got[:, 0], fixed.predict(HIST[:, 2:]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, any_steps.forecast(HIST[:, 2:], 3), rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match="the model reads windows of 4 steps; the history has 3"):
        fixed.forecast(HIST[:, :3], 2)


@pytest.mark.parametrize("history,steps,message", [
    (HIST[..., :1], 2, r"history must be \(steps, 2\) or \(batch, steps, 2\)"),
    (np.zeros((3, 0, 2)), 2, "with at least one step"),
    (np.full((6, 2), np.nan), 2, "history holds NaN or inf"),
    (np.array([["a", "b"]]), 2, "history must hold numbers"),
    (HIST, 0, "steps must be a whole number >= 1"),
])
def test_forecast_refuses_bad_history(any_steps, history, steps, message):
    with pytest.raises(DataError, match=message):
        any_steps.forecast(history, steps)


@pytest.mark.parametrize("spec,message", [
    ("input a: float[?, 2]\ninput b: float[?, 2]\noutput concat(a, b) | lstm(3) | dense(2)",
     r"forecast needs a model with one input, a series' windows; this one takes 2 \(a, b\)"),
    ("input x: float[2]\noutput x | dense(2)", "forecast needs a sequence of feature vectors as input"),
    ("input x: float[?, 2]\noutput x | bilstm(3) | dense(2)", "layer 'bidirectional' .* needs the whole sequence"),
    ("input x: float[?, 2]\nh = x | lstm(3)\noutput h | dense(2)\noutput o = h | dense(2)",
     r"forecast needs a model with one output"),
])
def test_forecast_refuses_models_it_cannot_roll(spec, message):
    with pytest.raises(DataError, match=message):
        rnndsl.compile(spec).forecast(HIST, 2)


TRAIN = '''input x: float[?, 2]
output x | lstm(3) | dense(%d)
train {
  data = csv("s.csv", %s)
  loss = "mse"
}
'''


@pytest.mark.parametrize("out,data,targets,message", [
    (2, 'columns=["a", "b"], window=4', None, None),        # None: every input feature, in order
    (1, 'columns=["a", "b"], target="b", window=4', [1], None),
    (1, 'columns=["a", "b"], target=["b"], window=4', [1], None),
    (1, 'target=[1], window=4', [1], None),
    (1, 'columns=["a", "b"], target="c", window=4', None, r"target column\(s\) \['c'\] of the spec's csv\(...\) are "
                                                          "not among its input columns"),
    (1, 'target="b", window=4', None, "names its target columns but not its input columns; pass targets="),
    (1, 'columns=[0, 1], target="b", window=4', None, "names columns by number and by name"),
    (2, 'columns=["a", "b"], window=4, horizon=2', None, r"predicts 2 row\(s\) after its window's last step, but "
                                                         r"its steps are 1 row\(s\) apart"),
])
def test_forecast_targets_from_the_spec(out, data, targets, message):
    m = rnndsl.compile(TRAIN % (out, data))
    if message:
        with pytest.raises(DataError, match=message):
            m.forecast(HIST, 2)
        return
    assert m._series_targets() == targets
    if targets is None:
        assert m.forecast(HIST, 2).shape == (3, 2, 2)


def test_forecast_refuses_bad_targets_and_sizes_that_do_not_fit():
    m = rnndsl.compile("input x: float[?, 2]\noutput x | lstm(3) | dense(2)", dtype="float64")
    h = np.zeros((4, 2))
    for bad in (["a", "b"], 1, [None, 1], [0.7, 1.2], [True, False]):
        with pytest.raises(DataError, match="targets must be a list of feature positions"):
            m.forecast(h, 2, targets=bad)
    with pytest.raises(DataError, match="more than the memory bound"):
        m.forecast(h, 10 ** 13)
