import io

from rnndsl.train.progress import Progbar, format_duration


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_not_a_terminal_prints_one_final_line():
    out, clock = io.StringIO(), Clock()
    bar = Progbar(4, stream=out, width=10, clock=clock)
    for step, loss in enumerate([1.0, 2.0, 3.0, 4.0], 1):
        clock.t += 0.5
        bar.update(step, {"loss": loss, "accuracy": 0.5})
    text = out.getvalue()
    assert text.count("\n") == 1 and "\r" not in text
    assert text == "4/4 [==========] - 2s 500ms/step - loss: 2.5000 - accuracy: 0.5000\n"


def test_terminal_rewrites_the_line_with_eta():
    out, clock = Tty(), Clock()
    bar = Progbar(50, stream=out, width=30, interval=0.0, clock=clock)
    clock.t += 5.0  # first step: slow (compilation), left out of the ETA
    bar.update(1, {"loss": 1.0})
    for step in range(2, 13):
        clock.t += 0.1
        bar.update(step, {"loss": 1.0, "accuracy": 0.95})
    text = out.getvalue()
    assert text.startswith("\r")
    last = text.split("\r")[-1]
    # 12/50 -> int(30 * 12 / 50) = 7 cells: 6 '=' and '>'
    assert last.startswith("12/50 [======>.......................] - ETA: 3s - loss: 1.0000")
    assert "accuracy: 0.9500" in last
    assert "\n" not in text
    clock.t += 0.1
    bar.update(50, {"loss": 1.0})
    final = out.getvalue().split("\r")[-1]
    assert final.startswith("50/50 [==============================] - ")
    assert final.endswith("\n")


def test_running_means_weighted_by_steps():
    bar = Progbar(10, verbose=0)
    bar.update(2, {"loss": 1.0})
    bar.update(6, {"loss": 4.0})  # covers 4 steps
    assert bar.means()["loss"] == (2 * 1.0 + 4 * 4.0) / 6


def test_stateful_metrics_shown_as_given_and_small_values():
    out = io.StringIO()
    bar = Progbar(2, stream=out, stateful_metrics=["val_loss"], clock=Clock())
    bar.update(1, {"val_loss": 9.0, "lr": 1e-5})
    bar.update(2, {"val_loss": 0.25, "lr": 1e-5})
    assert "val_loss: 0.2500" in out.getvalue()
    assert "lr: 1.0000e-05" in out.getvalue()


def test_verbose_zero_is_silent_and_verbose_two_has_no_bar():
    out = io.StringIO()
    bar = Progbar(3, verbose=0, stream=out)
    for s in range(1, 4):
        bar.update(s, {"loss": 1.0})
    assert out.getvalue() == ""
    out2, clock = Tty(), Clock()
    bar = Progbar(3, verbose=2, stream=out2, clock=clock)
    for s in range(1, 4):
        clock.t += 1.0
        bar.update(s, {"loss": 1.0})
    assert out2.getvalue() == "3/3 - 3s 1s/step - loss: 1.0000\n"


def test_unknown_target_and_finalize():
    out = io.StringIO()
    bar = Progbar(None, stream=out, clock=Clock())
    bar.update(5, {"loss": 2.0})
    assert out.getvalue() == ""
    bar.update(7, {"loss": 2.0}, finalize=True)
    assert out.getvalue().startswith("      7/Unknown - 0s")


def test_format_duration():
    assert format_duration(7.9) == "7s"
    assert format_duration(125) == "2:05"
    assert format_duration(3725) == "1:02:05"


def test_fit_bar_shows_what_history_records():
    """The bar's final loss and accuracy are the epoch's figures in the History (they were
    averaged a second time, as means of running means)."""
    import contextlib
    import io
    import re

    import numpy as np

    import rnndsl

    m = rnndsl.compile("input x: float[?, 3]\noutput x | lstm(4) | dense(2)", seed=2)
    m.configure(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 4, 3)).astype(np.float32), rng.integers(0, 2, 50)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        h = m.fit(x, y, batch_size=8, epochs=1, verbose=1, shuffle=False)
    last = [line for line in out.getvalue().splitlines() if "loss:" in line][-1]
    shown = dict(re.findall(r"(\w+): ([-0-9.e]+)", last))
    assert abs(float(shown["loss"]) - h.history["loss"][0]) < 1e-4
    assert abs(float(shown["accuracy"]) - h.history["accuracy"][0]) < 1e-4
