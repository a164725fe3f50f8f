"""`pip install .` into a fresh venv finds the grammar and examples from another directory."""

import os
import subprocess
import sys
import zipfile

import pytest


@pytest.mark.slow
def test_wheel_ships_grammar_and_runs_elsewhere(tmp_path):
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                           capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build a wheel here (no network for hatchling?): {build.stderr[-300:]}")
    wheel = next(tmp_path.glob("rnndsl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "rnndsl/grammar/rnn.lark" in names
    assert "rnndsl/examples/digits.rnn" in names
    assert "rnndsl/examples/data/digits.npz" in names
    # installed into a folder of its own, run by this interpreter with that folder first on
    # its path: it sees the packages this test run sees (a venv, a conda environment, the
    # system's), where a new venv would see only the base interpreter's
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([sys.executable, "-c", "import rnndsl, sys; print(rnndsl.__file__)"], cwd=elsewhere,
                       capture_output=True, text=True, env=env)
    assert str(target) in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "rnndsl", "summary"], cwd=elsewhere, capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert "Total params: 19,370" in r.stdout
    r = subprocess.run([sys.executable, "-m", "rnndsl", "run", "--epochs", "1", "--quiet", "--out", "c.npz"],
                       cwd=elsewhere, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "test_accuracy" in r.stdout
