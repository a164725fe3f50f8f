"""Learning-rate schedules: values against Keras 3.15, in optimizers, in a spec's train
section, from configure's text form, and through a checkpoint.

Keras numbers from a script run against Keras (KERAS_BACKEND=torch, Keras 3.15.1; Keras computes
in float32, hence the tolerances)."""

import numpy as np
import pytest

import rnndsl
from rnndsl import CheckpointError, SpecError, TrainingError
from rnndsl.optimizers import SGD, Adam, get_optimizer
from rnndsl.schedules import CosineDecay, ExponentialDecay, PiecewiseConstantDecay, get_schedule

KERAS = [
    (ExponentialDecay(0.1, 10, 0.5), [0, 1, 5, 10, 15, 40],
     [0.10000000149011612, 0.09330330044031143, 0.0707106813788414, 0.05000000074505806, 0.0353553406894207,
      0.0062500000931322575]),
    (ExponentialDecay(0.1, 10, 0.5, staircase=True), [0, 1, 9, 10, 15, 40],
     [0.1, 0.1, 0.1, 0.05, 0.05, 0.00625]),
    (CosineDecay(0.003, 1000), [0, 1, 250, 500, 999, 1000, 2000],
     [0.003000000026077032, 0.002999992575496435, 0.002560660243034363, 0.0014999998966231942, 7.42077821414e-09,
      0.0, 0.0]),
    (CosineDecay(0.003, 1000, alpha=0.1), [0, 500, 1000, 3000],
     [0.003000000026077032, 0.0016499998746439815, 0.0003000000142492354, 0.0003000000142492354]),
    (CosineDecay(0.0, 1000, alpha=0.1, warmup_target=0.01, warmup_steps=100), [0, 50, 99, 100, 600, 1100, 5000],
     [0.0, 0.004999999888241291, 0.00989999994635582, 0.009999999776482582, 0.00549999950453639,
      0.0010000000474974513, 0.0010000000474974513]),
    (PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), [0, 10, 11, 20, 21, 100], [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]),
]


@pytest.mark.parametrize("schedule, steps, keras", KERAS, ids=lambda v: repr(v)[:40])
def test_schedule_values_match_keras(schedule, steps, keras):
    np.testing.assert_allclose([schedule(t) for t in steps], keras, rtol=1e-6, atol=1e-9)
    assert get_schedule({"class_name": type(schedule).__name__, "config": schedule.get_config()}) == schedule


@pytest.mark.parametrize("cls, keras", [(SGD, [0.9125000238418579, -2.0999999046325684]),
                                        (Adam, [0.8306648179448178, -2.109824148225749])])  # floatx float64
def test_optimizer_follows_its_schedule_from_step_0(cls, keras):
    # Keras: the update taking iterations from t to t + 1 uses schedule(t)
    opt = cls(learning_rate=ExponentialDecay(0.1, 1, 0.5))
    w = np.array([1.0, -2.0])
    for g in ([0.5, 1.0], [0.25, -1.0], [1.0, 2.0]):
        opt.apply([w], [np.array(g)])
    np.testing.assert_allclose(w, keras, rtol=1e-6)
    assert opt.learning_rate == pytest.approx(0.0125)            # schedule(3), as Keras reports it


def test_a_rate_that_grows_past_any_float_stops_training_cleanly():
    assert ExponentialDecay(1.0, 1e-300, 2.0)(1) == float("inf")
    m = rnndsl.compile("input x: float[3]\noutput x | dense(2)")
    m.configure(loss="mse", optimizer=SGD(ExponentialDecay(1.0, 1e-300, 2.0)))
    m.train_on_batch(np.eye(3), np.zeros((3, 2)) + 1)          # step 0: the initial rate
    with pytest.raises(rnndsl.TrainingError, match="NaN or inf"):
        m.train_on_batch(np.eye(3), np.zeros((3, 2)) + 1)


def test_a_scheduled_rate_cannot_be_set_and_checks_its_options():
    opt = Adam(CosineDecay(0.01, 100))
    with pytest.raises(TrainingError, match="follows a schedule"):
        opt.learning_rate = 0.1
    plain = Adam(0.01)
    plain.learning_rate = 0.002
    assert plain.learning_rate == 0.002 and plain.schedule is None
    for bad, msg in [(lambda: ExponentialDecay(0.1, 0, 0.5), "decay_steps must be > 0"),
                     (lambda: PiecewiseConstantDecay([1, 2], [0.1]), "one value more than boundaries"),
                     (lambda: CosineDecay(0.1, 10, warmup_steps=5), "needs warmup_target"),
                     (lambda: get_schedule("cosine_decai", initial_learning_rate=1, decay_steps=2),
                      "did you mean 'cosine_decay'"),
                     (lambda: get_schedule({"class_name": "CosineDecay", "config": {"decay_steps": 2}}),
                      "needs initial_learning_rate")]:
        with pytest.raises(rnndsl.RnnError, match=msg):
            bad()


SPEC = """input x: float[3]
output x | dense(2)
train {
  loss = "sparse_categorical_crossentropy"
  optimizer = sgd(learning_rate=piecewise_constant_decay([1, 2], [0.5, 0.25, 0.125]), momentum=0.0)
}
"""


def test_spec_schedule_trains_and_survives_a_checkpoint(tmp_path):
    m = rnndsl.compile(SPEC, dtype="float64").configure()        # the train section's optimizer
    x, y = np.eye(3)[:2], np.array([0, 1])
    rates = []
    for _ in range(4):
        rates.append(m.optimizer.learning_rate)
        w = m.get_weights()
        _, g = m.loss_and_gradients(x, y)
        m.train_on_batch(x, y)
        np.testing.assert_allclose(m.get_weights()[0], w[0] - rates[-1] * g[0], atol=1e-12)
    assert rates == [0.5, 0.5, 0.25, 0.125]          # steps 0 and 1 <= 1, step 2 <= 2, then the last value
    m.save(tmp_path / "m.npz")
    back = rnndsl.load_model(tmp_path / "m.npz")
    assert back.optimizer.schedule == m.optimizer.schedule and back.optimizer.iterations == 4


def test_checkpoint_with_a_hostile_schedule_is_refused(tmp_path):
    from rnndsl.train.checkpoint import load_checkpoint, save_checkpoint

    m = rnndsl.compile(SPEC)
    m.train_on_batch(np.eye(3)[:2], np.array([0, 1]))
    m.save(tmp_path / "m.npz")
    arrays, meta = load_checkpoint(tmp_path / "m.npz")
    for lr in ({"class_name": "os.system", "config": {}}, {"class_name": "CosineDecay", "config": {"x": {}}}):
        meta["train"]["optimizer"]["learning_rate"] = lr
        save_checkpoint(tmp_path / "bad.npz", arrays, meta)
        with pytest.raises(CheckpointError):
            rnndsl.load_model(tmp_path / "bad.npz")


def test_spec_schedule_errors_have_positions():
    base = 'input x: float[3]\noutput x | dense(2)\ntrain {\n  loss = "mse"\n  optimizer = adam(learning_rate=%s)\n}'
    # (the schedule's text, the message, the text the error points at)
    cases = [("cosine_decy(0.1, 10)", "unknown learning-rate schedule 'cosine_decy'", "cosine_decy"),
             ("cosine_decay(0.1)", "cosine_decay needs decay_steps", "cosine_decay"),
             ("exponential_decay(0.1, 10, 0.5, staircase=1)", "staircase takes true or false", "1)"),
             ("piecewise_constant_decay([2, 1], [1, 2, 3])", "the boundaries must increase", "piecewise"),
             ("piecewise_constant_decay(3, [1])", "boundaries takes a list of numbers", "3,"),
             ("cosine_decay(decay_steps=10, 0.1)", "a positional option after a named one", "0.1")]
    for text, msg, at in cases:
        with pytest.raises(SpecError) as info:
            rnndsl.compile(base % text)
        d = info.value.diagnostics[0]
        line = (base % text).splitlines()[4]
        assert msg in d.message and (d.pos.line, d.pos.column) == (5, line.index(at) + 1), (text, d.message, d.pos)


def test_configure_takes_the_spec_form_of_an_optimizer():
    m = rnndsl.compile("input x: float[3]\noutput x | dense(2)")
    m.configure(loss="mse", optimizer="adam(learning_rate=cosine_decay(0.003, 1000, warmup_steps=10, "
                                       "warmup_target=0.01), clipnorm=1.0)")
    opt = m.optimizer
    assert isinstance(opt, Adam) and opt.clipnorm == 1.0
    assert opt.schedule == CosineDecay(0.003, 1000, warmup_steps=10, warmup_target=0.01)
    assert m.configure(loss="mse", optimizer="sgd(learning_rate=0.2, momentum=0.9)").optimizer.momentum == 0.9
    assert m.configure(loss="mse", optimizer="RMSprop").optimizer.learning_rate == 0.001
    with pytest.raises(SpecError, match=r"<optimizer>:1:26: error: adam has no option 'learnin_rate'"):
        m.configure(loss="mse", optimizer="adam(learnin_rate=0.1)")
    with pytest.raises(SpecError, match="unexpected"):
        m.configure(loss="mse", optimizer="adam(learning_rate=0.1)) } train { loss = \"mae\"")
    assert get_optimizer(opt.get_config()).schedule == opt.schedule
