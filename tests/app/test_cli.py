"""The command line: check, summary, graph; exit codes; no tracebacks."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "rnndsl", *args], cwd=cwd, capture_output=True, text=True)


def test_check_ok():
    r = run("check", "examples/encoder_decoder.rnn")
    assert r.returncode == 0, r.stderr
    assert "258,698 params" in r.stdout


def test_summary_table():
    r = run("summary", "examples/mnist_lstm.rnn")
    assert r.returncode == 0
    assert "lstm (LSTM)" in r.stdout and "(None, 64)" in r.stdout
    assert "Total params: 24,714" in r.stdout and "Non-trainable params: 128" in r.stdout


def test_default_spec_is_embedded():
    r = run("summary", cwd="/")
    assert r.returncode == 0, r.stderr
    assert "Total params: 19,370" in r.stdout   # examples/digits.rnn


def test_graph_dot():
    r = run("graph", "examples/encoder_decoder.rnn")
    assert r.returncode == 0
    assert r.stdout.startswith("digraph")
    assert "style=dashed" in r.stdout  # the state edge


def test_graph_svg_needs_dot(tmp_path):
    r = run("graph", "examples/encoder_decoder.rnn", "-o", str(tmp_path / "g.svg"))
    import shutil

    if shutil.which("dot"):
        assert r.returncode == 0 and (tmp_path / "g.svg").exists()
    else:
        assert r.returncode == 2 and "Graphviz" in r.stderr and "Traceback" not in r.stderr


def test_bad_spec_exit_1_no_traceback(tmp_path):
    bad = tmp_path / "bad.rnn"
    bad.write_text("input x: float[?, 3]\noutput x | lstm(4) | lstm(2) | dense(nope)\n")
    r = run("check", str(bad))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"{bad}:2:12: error: lstm needs a sequence" in r.stderr or ":2:" in r.stderr
    assert "^" in r.stderr and "hint:" in r.stderr
    assert "2 errors" in r.stderr


@pytest.mark.parametrize("args", [("bogus",), ("check", "missing.rnn"), ("summary", "--nope"), ()])
def test_usage_errors_exit_2(args):
    r = run(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("cmd", ["check", "summary", "graph"])
def test_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0 and "usage:" in r.stdout


def test_run_trains_and_predicts_from_checkpoint(tmp_path):
    ckpt = tmp_path / "digits.npz"
    r = run("run", "examples/digits.rnn", "--epochs", "2", "--quiet", "--out", str(ckpt))
    assert r.returncode == 0, r.stderr
    assert "test_accuracy:" in r.stdout and ckpt.exists()
    import numpy as np

    from rnndsl.data import load_digits

    x, _ = load_digits()
    np.savez(tmp_path / "in.npz", x=x[:5])
    r = run("run", str(ckpt), "--input", str(tmp_path / "in.npz"), "--output", str(tmp_path / "p.npy"))
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "p.npy").shape == (5, 10)


def test_run_progress_one_line_per_epoch_when_not_a_terminal(tmp_path):
    r = run("run", "examples/digits.rnn", "--epochs", "3", "--out", str(tmp_path / "c.npz"))
    assert r.returncode == 0
    lines = [ln for ln in r.stdout.splitlines() if "step - loss:" in ln]
    assert len(lines) == 3 and all("accuracy:" in ln and "\r" not in ln for ln in lines)


def test_run_nan_loss_stops_and_saves(tmp_path):
    spec = tmp_path / "bad.rnn"
    spec.write_text("input x: float[8, 8]\noutput x | lstm(8) | dense(10)\n"
                    "train {\n data = digits()\n loss = \"sparse_categorical_crossentropy\"\n"
                    " optimizer = sgd(learning_rate=1e39)\n epochs = 3\n}\n")
    r = run("run", str(spec), "--quiet")
    assert r.returncode == 1
    assert "at epoch 1, batch" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "bad.ckpt.npz").exists()


def test_run_errors_before_training(tmp_path):
    spec = tmp_path / "nodata.rnn"
    spec.write_text("input x: float[8, 8]\noutput x | lstm(8) | dense(10)\ntrain {\n loss = \"mse\"\n}\n")
    r = run("run", str(spec))
    assert r.returncode == 1 and "names no data" in r.stderr
    spec.write_text("input x: float[8, 8]\noutput x | lstm(8) | dense(10)\n"
                    "train {\n data = npz(\"missing.npz\")\n loss = \"sparse_categorical_crossentropy\"\n}\n")
    r = run("run", str(spec))
    assert r.returncode == 1 and "missing.npz" in r.stderr and "Traceback" not in r.stderr
    r = run("run", "examples/digits.rnn", "--device", "cuda")
    assert r.returncode == 1 and "NUMBA_ENABLE_CUDASIM=1" in r.stderr and "Traceback" not in r.stderr


def test_run_ctrl_c_saves_a_checkpoint(tmp_path):
    import signal
    import time

    out = tmp_path / "int.npz"
    p = subprocess.Popen([sys.executable, "-m", "rnndsl", "run", "examples/addition.rnn", "--epochs", "500",
                          "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline:
        line = p.stdout.readline()
        seen += line
        if "loss:" in line:           # one epoch done: training is under way
            break
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert out.exists() and "interrupted" in stdout + seen
