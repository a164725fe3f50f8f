"""Sizes no machine could hold are refused at the argument that makes them (rnndsl/graph/sizes.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

import rnndsl
from rnndsl.errors import SpecError
from spec_helpers import errors_of

ROOT = Path(__file__).resolve().parents[2]
INPUT = "input x: float[?, 3]\n"


def _one(text, message):
    diags = errors_of(text)
    matching = [d for d in diags if message in d.message]
    assert matching, [d.message for d in diags]
    return matching[0]


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "rnndsl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("text,culprit,figure", [
    (INPUT + "output x | lstm(1000000000000)", "1000000000000", "48,000,000,000,000 bytes"),
    (INPUT + "output x | lstm(99999999999999)", "99999999999999", "bytes"),
    (INPUT + "output x | lstm(8) | repeat(1000000000) | lstm(4)", "1000000000", "32,000,000,000 bytes"),
    ("embed(100000000000, 8) | lstm(4)", "100000000000", "3,200,000,000,000 bytes"),
    ("input x: float[1000000000000, 3]\noutput x | lstm(4)", "1000000000000", "12,000,000,000,000 bytes"),
    ("input x: float[?, 1000000000000]\noutput x | lstm(4)", "1000000000000", "4,000,000,000,000 bytes"),
    ("input x: float[10000000000]\noutput x | dense(4)", "10000000000", "40,000,000,000 bytes"),
    (INPUT + "output x | bidirectional(lstm(100000))", "100000", "160,000,000,000 bytes"),
    (INPUT + "output x | gru(64, seq) | dense(40000000)", "40000000", "bytes"),
    ("cell c(units) {\n  h = tanh(x @ W + h @ U)\n}\n" + INPUT + "output x | rnn(c(100000))", "100000",
     "40,000,000,000 bytes"),
])
def test_sizes_that_cannot_fit_are_refused_at_the_argument(text, culprit, figure):
    diags = errors_of(text)
    assert len(diags) == 1, [d.message for d in diags]
    d = diags[0]
    assert figure in d.message and "2,147,483,648 elements" in d.message
    line = text.splitlines()[d.pos.line - 1]
    assert line[d.pos.column - 1:].startswith(culprit), (d.pos, line)


def test_float64_doubles_the_figure():
    with pytest.raises(SpecError, match=r"96,000,000,000,000 bytes \(87.3 TiB\) as float64"):
        rnndsl.compile(INPUT + "output x | lstm(1000000000000)", dtype="float64")


def test_total_weights_beyond_physical_memory_are_refused(monkeypatch):
    from rnndsl.graph import sizes

    monkeypatch.setattr(sizes, "physical_memory", lambda: 10 * 2**20)    # a 10 MiB machine
    text = INPUT + "output x | lstm(100) | dense(2000) | dense(2000)"
    d = _one(text, "more than this machine's memory, 10,485,760 bytes")
    assert "the weights take 16,982,400 bytes (16.2 MiB) (4,245,600 parameters as float32)" in d.message
    assert d.pos.column == text.splitlines()[1].rindex("2000") + 1       # the largest layer's units
    monkeypatch.setattr(sizes, "physical_memory", lambda: None)
    rnndsl.compile(text)


def test_check_cli_refuses_a_huge_layer(tmp_path):
    spec = tmp_path / "huge.rnn"
    spec.write_text(INPUT + "output x | lstm(8) | repeat(1000000000) | lstm(4)\n")
    r = run_cli("check", str(spec))
    assert r.returncode == 1
    assert f"{spec}:2:29: error: repeat_vector: one sample of its output" in r.stderr
    assert "32,000,000,000 bytes" in r.stderr


def test_large_but_possible_sizes_pass():
    m = rnndsl.compile(INPUT + "output x | lstm(2000) | repeat(1000) | dense(5)")
    assert m.count_params() == 4 * 2000 * (3 + 2000 + 1) + 2001 * 5
