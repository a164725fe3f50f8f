"""The newcomer's commands: examples, warmup, the first-run notice, checkpoints of shipped
examples written to the current folder (issue 16)."""

from pathlib import Path

import numpy as np

import rnndsl
from rnndsl import caches, cli
from rnndsl.cli import main


def test_examples_lists_and_copies(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["examples"]) == 0
    listed = capsys.readouterr().out
    assert "digits " in listed and "seq2seq " in listed and "Handwritten digits" in listed
    assert main(["examples", "digits"]) == 0
    assert (tmp_path / "digits.rnn").read_text() == (cli.examples_dir() / "digits.rnn").read_text()
    assert main(["examples", "digits"]) == 2                       # never overwrites
    assert main(["examples", "digitz"]) == 2
    assert "did you mean 'digits'" in capsys.readouterr().err


def test_warmup_compiles_a_spec_of_its_own_shape(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(40, 5, 3)).astype(np.float32), y=rng.integers(0, 2, 40))
    spec = tmp_path / "s.rnn"
    spec.write_text('input x: float[?, 3]\noutput x | gru(5) | dense(2)\ntrain {\n  data = npz("d.npz")\n'
                    '  loss = "sparse_categorical_crossentropy"\n  batch_size = 16\n}\n')
    assert main(["warmup", str(spec)]) == 0
    assert "s.rnn: kernels ready in" in capsys.readouterr().out
    nodata = tmp_path / "n.rnn"
    nodata.write_text("input a: int[?]\ninput b: float[4, 2]\nx = a | embed(9, 3) | lstm(4)\n"
                      "y = b | lstm(4)\noutput concat(x, y) | dense(2)\n")
    assert main(["warmup", str(nodata)]) == 0


def test_the_first_run_says_it_compiles(tmp_path, monkeypatch):
    monkeypatch.setattr(caches, "_numba_folder", [tmp_path])
    assert caches.nothing_compiled_yet()
    (tmp_path / "cpu_1").mkdir()
    (tmp_path / "cpu_1" / "lstm.lstm_forward_kernel-98.py311.nbi").write_bytes(b"")
    assert not caches.nothing_compiled_yet()


def test_a_shipped_example_writes_its_checkpoint_here(tmp_path, monkeypatch):
    assert cli._inside_package(Path(rnndsl.__file__).parent / "examples" / "digits.rnn")
    assert not cli._inside_package(tmp_path / "digits.rnn")
    rng = np.random.default_rng(0)
    data = tmp_path / "elsewhere"
    data.mkdir()
    np.savez(data / "d.npz", x=rng.normal(size=(40, 5, 3)).astype(np.float32), y=rng.integers(0, 2, 40))
    spec = data / "s.rnn"
    spec.write_text('input x: float[?, 3]\noutput x | gru(5) | dense(2)\ntrain {\n  data = npz("d.npz")\n'
                    '  loss = "sparse_categorical_crossentropy"\n  epochs = 1\n}\n')
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setattr(cli, "_inside_package", lambda path: True)      # as if it were shipped
    assert main(["run", str(spec), "--quiet"]) == 0
    assert (here / "s.ckpt.npz").is_file() and not (data / "s.ckpt.npz").exists()
