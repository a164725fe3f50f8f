"""The command line: check, summary, graph; exit codes; no tracebacks."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "rnndsl", *args], cwd=cwd, capture_output=True, text=True)


def test_check_ok():
    r = run("check", "examples/seq2seq.rnn")
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
    assert "Total params: 258,698" in r.stdout


def test_graph_dot():
    r = run("graph", "examples/seq2seq.rnn")
    assert r.returncode == 0
    assert r.stdout.startswith("digraph")
    assert "style=dashed" in r.stdout  # the state edge


def test_graph_svg_needs_dot(tmp_path):
    r = run("graph", "examples/seq2seq.rnn", "-o", str(tmp_path / "g.svg"))
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
