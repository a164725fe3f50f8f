"""`run --log history.csv` and `rnndsl plot history.csv -o curves.png` (matplotlib optional)."""

import sys

import pytest

from rnndsl.cli import main

SPEC = """input x: float[8, 8]
output x | lstm(4) | dense(10)
train {
  data = digits(test_split=0.5)
  loss = "sparse_categorical_crossentropy"
  optimizer = adam(learning_rate=exponential_decay(0.01, 20, 0.5))
  metrics = ["accuracy"]
  validation_split = 0.2
  epochs = 2
}
"""


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    d = tmp_path_factory.mktemp("log")
    (d / "s.rnn").write_text(SPEC)
    assert main(["run", str(d / "s.rnn"), "--quiet", "--log", str(d / "h.csv"), "--out", str(d / "c.npz")]) == 0
    return d / "h.csv"


def test_run_log_writes_a_row_per_epoch(history):
    lines = history.read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss,val_accuracy,val_loss"
    assert [ln.split(",")[0] for ln in lines[1:]] == ["0", "1"]
    assert all(0 < float(v) for ln in lines[1:] for v in ln.split(",")[1:])


def test_run_log_usage_errors(history, tmp_path, capsys):
    assert main(["run", str(history.parent / "c.npz"), "--input", str(history), "--log", "x.csv"]) == 2
    assert "--log goes with training a spec" in capsys.readouterr().err
    assert main(["run", str(history.parent / "s.rnn"), "--log", str(tmp_path / "no" / "h.csv")]) == 2
    assert "cannot write --log" in capsys.readouterr().err


def test_plot_draws_the_curves(history, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install 'rnndsl[plot]')")
    out = tmp_path / "curves.png"
    assert main(["plot", str(history), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    assert main(["plot", str(history), "-o", str(tmp_path / "c.svg")]) == 0
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    assert main(["plot", str(history)]) == 0 and history.with_suffix(".png").exists()
    assert main(["plot", str(history), "-o", str(tmp_path / "c.jpg")]) == 1
    assert "must end in .png, .svg, .pdf" in capsys.readouterr().err


def test_plot_without_matplotlib_says_how_to_get_it(history, tmp_path, monkeypatch, capsys):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["plot", str(history), "-o", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert "plot needs matplotlib" in err and "pip install 'rnndsl[plot]'" in err and "Traceback" not in err
    assert not (tmp_path / "c.png").exists()


def test_plot_reads_only_histories(tmp_path, capsys):
    from rnndsl.app.plot import panels, read_history

    bad = tmp_path / "bad.csv"
    for text, msg in [("", "is empty"), ("a,b\n1,2\n", "no 'epoch' column"),
                      ("epoch,loss\n0,0.5\n1,x\n", "bad.csv:3: column 'loss' holds 'x'"),
                      ("epoch,loss\n0,0.5,1\n", "bad.csv:2: 3 values for 2 columns")]:
        bad.write_text(text)
        assert main(["plot", str(bad), "-o", str(tmp_path / "o.png")]) in (1, 2)
        assert msg in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "none.csv")]) == 2
    good = tmp_path / "h.csv"
    good.write_text("epoch;accuracy;learning_rate;loss;val_accuracy;val_loss\n0;0.5;0.1;1.0;NA;NA\n1;0.6;0.05;0.8;NA;NA\n")
    epochs, cols = read_history(good)
    assert epochs == [0, 1] and cols["loss"] == [1.0, 0.8]
    assert panels(cols) == [("loss", ["loss"]), ("accuracy", ["accuracy"]), ("learning_rate", ["learning_rate"])]
