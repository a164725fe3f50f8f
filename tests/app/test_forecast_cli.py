"""From a numeric CSV to a forecast with a .rnn file and the CLI (issue 19, point 2): the
shipped forecast example trains in seconds and beats the naive forecast, `run CKPT
--forecast N --input series.csv` rolls it forward, and bad inputs are rnndsl errors."""

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from rnndsl.app.runner import train_spec
from rnndsl.app.warmup import warm_up
from rnndsl.cli import main
from rnndsl.saving import load_model

pytestmark = pytest.mark.slow                  # trains a model (a few seconds)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The shipped example, copied with its data, trained once on its own budget."""
    here = tmp_path_factory.mktemp("forecast")
    shutil.copyfile(EXAMPLES / "forecast.rnn", here / "forecast.rnn")
    (here / "data").mkdir()
    shutil.copyfile(EXAMPLES / "data" / "demand.csv", here / "data" / "demand.csv")
    warm_up(here / "forecast.rnn")                   # the kernels compiled: what follows is training
    cpu = time.process_time()
    result = train_spec(here / "forecast.rnn", quiet=True, out=here / "f.npz", stream=io.StringIO())
    result["cpu_seconds"] = time.process_time() - cpu
    return here, result


def test_the_example_beats_the_naive_forecast_in_seconds(trained):
    _, r = trained
    # README: forecast MAE 0.063 against the naive forecast's 0.125 (30 epochs, 1.5 s)
    assert r["test_forecast_mae"] < 0.7 * r["test_naive_mae"]
    assert abs(r["test_naive_mae"] - 0.1246) < 1e-3       # the data and its split are fixed
    assert r["cpu_seconds"] < 5, r
    print(f"trained in {r['seconds']:.1f} s ({r['cpu_seconds']:.1f} s of CPU), MAE {r['test_forecast_mae']:.4f} "
          f"against the naive {r['test_naive_mae']:.4f}")


def test_run_forecast_from_the_csv(trained, capsys):
    here, _ = trained
    csv = here / "data" / "demand.csv"
    out = here / "next_day.csv"
    assert main(["run", str(here / "f.npz"), "--forecast", "24", "--input", str(csv), "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "step,demand" and len(lines) == 25
    last_day = np.loadtxt(csv, delimiter=",", skiprows=1)[-24:, 2:3]
    want = load_model(here / "f.npz").forecast(last_day, 24)
    got = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert main(["run", str(here / "f.npz"), "--forecast", "3", "--input", str(csv)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-4].split() == ["step", "demand"] and printed[-1].split()[0] == "3"
    np.save(here / "h.npy", last_day)
    assert main(["run", str(here / "f.npz"), "--forecast", "3", "--input", str(here / "h.npy"), "--output",
                 str(here / "f.npy")]) == 0
    np.testing.assert_allclose(np.load(here / "f.npy"), want[:3], rtol=1e-5)


@pytest.mark.parametrize("csv,message", [
    ("day,hour,load\n1,0,1.0\n", "h.csv:1: no column 'demand' (the columns are: day, hour, load)"),
    ("day,hour,demand\n" + "".join(f"1,{i},1.0\n" for i in range(10)), "h.csv has 10 row(s); the model's window "
                                                                       "of 24 steps takes 24"),
    ("day,hour,demand\n1,0,1.0\n1,1\n", "h.csv:3: expected 3 fields, as the header has, found 2"),
])
def test_run_forecast_bad_history_is_an_rnndsl_error(trained, capsys, csv, message):
    here, _ = trained
    (here / "h.csv").write_text(csv)
    assert main(["run", str(here / "f.npz"), "--forecast", "2", "--input", str(here / "h.csv")]) == 1
    assert message in capsys.readouterr().err


def test_forecast_usage(trained, capsys):
    here, _ = trained
    assert main(["run", str(here / "forecast.rnn"), "--forecast", "3"]) == 2
    assert "--forecast goes with a checkpoint (.npz), not a spec" in capsys.readouterr().err
    assert main(["run", str(here / "f.npz"), "--forecast", "3"]) == 2
    assert "forecasting with a checkpoint needs --input" in capsys.readouterr().err
    assert main(["run", str(here / "f.npz"), "--forecast", "0", "--input", "x.csv"]) == 2


def test_examples_copies_the_data_a_spec_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["examples", "forecast"]) == 0
    assert (tmp_path / "data" / "demand.csv").read_bytes() == (EXAMPLES / "data" / "demand.csv").read_bytes()
    assert main(["check", "forecast.rnn"]) == 0
    (tmp_path / "forecast.rnn").unlink()
    assert main(["examples", "forecast"]) == 2                     # never overwrites the data either
    assert "demand.csv exists already" in capsys.readouterr().err
