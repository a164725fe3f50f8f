"""The command line on broken input (issue 15): bad data sources, broken --input files, bad
checkpoints and paths, out-of-range numbers. Each ends in exit 1 (an rnndsl error) or 2
(usage) with a message naming what was wrong, never 3; --out is checked before training;
temporary files of atomic writes are named to be recognised, and stale ones are removed."""

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from rnndsl.cli import main

SPEC = ("input x: float[4, 3]\noutput x | lstm(4) | dense(2)\n"
        "train {\n data = %s\n loss = \"sparse_categorical_crossentropy\"\n epochs = 1\n batch_size = 8\n}\n")


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    """cli(*args) -> (status, stdout, stderr), run in-process in tmp_path."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("ok.npz", x=rng.random((20, 4, 3)).astype("f4"), y=rng.integers(0, 2, 20))

    def run(*args):
        capsys.readouterr()
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "internal error" not in err, err
        return status, out, err
    return run


def _spec(data, name="s.rnn"):
    with open(name, "w") as f:
        f.write(SPEC % data)
    return name


@pytest.mark.parametrize("data, arrays, message", [
    ('npz("ok.npz", foo=1)', None, "npz has no option 'foo'"),
    ('npz("d.npz")', {"x": np.zeros((0, 4, 3), "f4"), "y": np.zeros(0, int)}, "data 'npz' holds no samples"),
    ('npz("d.npz")', {"x": np.zeros((1, 4, 3), "f4"), "y": np.zeros(1, int)},
     "test_split=0.2 of 1 sample(s) leaves no held-out samples"),
    ('npz("ok.npz", test_split=1.0)', None, "test_split takes a fraction in [0, 1), got the number 1.0"),
    ('npz("ok.npz", test_split="a")', None, 'test_split takes a fraction in [0, 1), got the string "a"'),
    ('npz("ok.npz", split_seed=-2)', None, "split_seed takes a whole number >= 0, got the number -2"),
    ('npz("d.npz")', {"x": np.zeros((20, 4, 3), "f4"), "y": np.array(["a", "b"] * 10)},
     "d.npz: array 'y' has dtype <U1; only numbers are read"),
    ('npz("d.npz")', {"x": np.zeros((20, 4, 3), "f4"), "y": np.full(20, np.inf)},
     "the targets for 'dense' hold NaN or inf"),
    ('npz("d.npz")', {"x": np.zeros((20, 4, 3), "f4"), "y": np.full(20, 5)},
     "label 5 in the targets for 'dense' is out of range"),
    ('npz("d.npz")', {"x": np.array([None] * 20, dtype=object), "y": np.zeros(20, int)},
     "d.npz: array 'x' holds Python objects"),
    ('npz(3)', None, "npz takes the file's path first, in double quotes, got the number 3"),
    ('npz()', None, "npz needs a file path"),
    ('npz("ok.npz", x_key=3)', None, "x_key takes a string in double quotes, got the number 3"),
    ('npz("ok.npz", y_key="lab")', None, "ok.npz has no array 'lab' (it has: x, y)"),
    ('series(batch_size=0)', None, "batch_size takes a whole number >= 1, got the number 0"),
    ('series(batch_size=2, chunk=4)', None, "series needs length"),
    ('series(length=20, batch_size=2, chunk=4)', None, "leave none to hold out with test_split=0.2"),
    ('sine(n="a", length=4)', None, 'n takes a whole number >= 1, got the string "a"'),
    ('sine(n=10, length=4, noise=-1)', None, "noise takes a number >= 0, got the number -1"),
    ('addition(n=10, digits=40)', None, "digits takes a whole number from 1 to 18, got the number 40"),
    ('csv("ok.npz")', None, "ok.npz is not a UTF-8 text file"),
    ('csv("ok.npz", delimiter="")', None, 'delimiter takes one character in double quotes, got the string ""'),
    ('text("t.tsv", maxlen=0)', None, "maxlen takes a whole number >= 1, got the number 0"),
    ('text("t.tsv", labels=3)', None, 'labels takes a list of strings, e.g. ["neg", "pos"], got the number 3'),
])
def test_bad_data_sources_exit_1(cli, data, arrays, message):
    if arrays is not None:
        np.savez("d.npz", **arrays)
    with open("t.tsv", "w") as f:
        f.write("a\thello world\nb\tbye\n" * 5)
    status, out, err = cli("run", _spec(data), "--quiet", "--out", "o.npz")
    assert status == 1, err
    assert message in err
    assert not os.path.exists("o.npz")


def test_big_endian_labels_train(cli):
    np.savez("d.npz", x=np.zeros((20, 4, 3), ">f4"), y=(np.arange(20) % 2).astype(">i8"))
    status, out, err = cli("run", _spec('npz("d.npz")'), "--quiet", "--out", "o.npz")
    assert status == 0, err
    assert "trained 1 epochs" in out


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
    (["--epochs", "-3"], "argument --epochs: must be >= 1, got -3"),
    (["--batch-size", "-3"], "argument --batch-size: must be >= 1, got -3"),
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["--seed", "-3"], "argument --seed: must be >= 0, got -3"),
    (["--epochs", "1" * 5000], "argument --epochs: expected a whole number"),
    (["--out", "nodir/o.npz"], "cannot write --out nodir/o.npz: directory nodir does not exist"),
    (["--out", "."], "cannot write --out .: . is a directory"),
    (["--out", "ok.npz/x"], "cannot write --out ok.npz/x: ok.npz is not a directory"),
    (["--input", "ok.npz"], "--input and --output go with a checkpoint"),
])
def test_bad_numbers_and_paths_are_usage_errors_before_training(cli, args, message):
    status, out, err = cli("run", _spec('npz("ok.npz")'), "--quiet", *args)
    assert status == 2, err
    assert message in err
    assert out == ""            # nothing trained


def test_train_spec_checks_its_arguments_and_the_default_checkpoint_path(tmp_path, monkeypatch):
    from rnndsl import CheckpointError, TrainingError
    from rnndsl.app import runner

    monkeypatch.chdir(tmp_path)
    np.savez("ok.npz", x=np.zeros((20, 4, 3), "f4"), y=np.arange(20) % 2)
    spec = tmp_path / _spec('npz("ok.npz")')
    with pytest.raises(TrainingError, match="epochs must be a whole number >= 1, got 0"):
        runner.train_spec(spec, epochs=0, quiet=True)
    with pytest.raises(TrainingError, match="batch_size must be a whole number >= 1, got -1"):
        runner.train_spec(spec, batch_size=-1, quiet=True)
    trained = []
    monkeypatch.setattr(runner, "load_source", lambda *a, **k: trained.append(1))
    with pytest.raises(CheckpointError, match="cannot write the checkpoint .*: directory .*nodir does not exist"):
        runner.train_spec(spec, out=tmp_path / "nodir" / "c.npz", quiet=True)
    assert trained == []


@pytest.fixture
def checkpoint(cli):
    status, _, err = cli("run", _spec('npz("ok.npz")'), "--quiet", "--out", "c.npz")
    assert status == 0, err
    return "c.npz"


def test_broken_input_files_exit_1(cli, checkpoint):
    data = open("ok.npz", "rb").read()
    cases = {"trunc.npz": data[: len(data) // 2], "short.npz": data[:-30], "empty.npz": b"",
             "text.npz": b"hello", "flip.npz": data[:200] + bytes([data[200] ^ 0xFF]) + data[201:]}
    for name, content in cases.items():
        with open(name, "wb") as f:
            f.write(content)
    np.savez("obj.npz", x=np.array([None] * 3, dtype=object))
    np.savez("other.npz", z=np.zeros(3))
    np.savez("shape.npz", x=np.zeros((3, 4, 5), "f4"))
    for name, message in [("trunc.npz", "truncated or corrupt"), ("short.npz", "truncated or corrupt"),
                          ("empty.npz", r"is not a NumPy .npy/.npz file \(it is empty\)"),
                          ("text.npz", "is not a NumPy .npy/.npz file"),
                          ("flip.npz", "flip.npz: array 'x' .*truncated or corrupt"),
                          ("obj.npz", "obj.npz: array 'x' holds Python objects"),
                          ("other.npz", r"expected arrays named \['x'\] or 'x', found \['z'\]"),
                          ("shape.npz", r"input 'x' expects 3 features, shape \(batch, 4, 3\), got \(3, 4, 5\)")]:
        status, out, err = cli("run", checkpoint, "--input", name)
        assert status == 1, (name, err)
        assert re.search(message, err), (name, err)


def test_a_checkpoint_with_a_damaged_zip_directory_exits_1(cli, checkpoint):
    """A byte of a central-directory entry edited (its "version needed to extract": zipfile
    raises NotImplementedError when it opens the file, before any member is read): a
    CheckpointError, exit 1 (it was an internal error, exit 3, in the sniffing for a .keras
    zip that runs first)."""
    data = bytearray(open(checkpoint, "rb").read())
    entries = [k for k in range(len(data)) if data[k:k + 4] == b"PK\x01\x02"]
    assert entries
    for k in entries[:3]:
        bad = bytearray(data)
        bad[k + 6] = 0xFF
        with open("ver.npz", "wb") as f:
            f.write(bytes(bad))
        status, out, err = cli("run", "ver.npz", "--input", "ok.npz")
        assert status == 1, err
        assert "ver.npz" in err and "zip file version" in err, err


@pytest.mark.parametrize("output, message", [
    ("nodir/p.npy", "cannot write --output nodir/p.npy: directory nodir does not exist"),
    (".", "cannot write --output .: . is a directory"),
    ("", "--output needs a file path"),
])
def test_bad_output_paths_exit_2(cli, checkpoint, output, message):
    status, out, err = cli("run", checkpoint, "--input", "ok.npz", "--output", output)
    assert status == 2, err
    assert message in err


def test_bad_checkpoint_metadata_exit_1(cli, checkpoint):
    from rnndsl.train.checkpoint import load_checkpoint, save_checkpoint

    arrays, meta = load_checkpoint(checkpoint)
    for key, value, message in [("dtype", 5, "'dtype' must be one of float32, float64, got int"),
                                ("seed", "x", "'seed' must be a whole number >= 0, got str"),
                                ("epoch", [], "'epoch' must be a whole number >= 0, got list"),
                                ("spec", 3.5, "'spec' must be the spec text, got float")]:
        save_checkpoint("bad.npz", arrays, {**meta, key: value})
        status, out, err = cli("run", "bad.npz", "--input", "ok.npz")
        assert status == 1, err
        assert message in err


def test_temporary_files_are_named_to_be_recognised(cli, checkpoint, monkeypatch):
    from rnndsl.train import checkpoint as ck

    seen = []
    real = os.fsync

    def spy(fd):
        seen.extend(n for n in os.listdir(".") if n.endswith(".rnndsl-tmp"))
        return real(fd)

    monkeypatch.setattr(ck.os, "fsync", spy)
    cli("run", checkpoint, "--input", "ok.npz", "--output", "p.npy")
    assert any(re.fullmatch(rf"\.p\.npy\.{os.getpid()}\.[0-9a-f]{{8}}\.rnndsl-tmp", n) for n in seen), seen
    assert not [n for n in os.listdir(".") if "tmp" in n]


def test_stale_temporaries_of_killed_writes_are_removed(cli, checkpoint):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = time.time() - 3600
    stale = [f".c.npz.{dead.pid}.0123abcd.rnndsl-tmp", f".c.npz.{dead.pid}.89abcdef.tmp"]
    keep = [f".c.npz.{os.getppid()}.0123abcd.rnndsl-tmp",     # a live writer's
            ".other.npz.1.0123abcd.rnndsl-tmp",                # another target's
            f".c.npz.{dead.pid}.fresh000.rnndsl-tmp"]          # not the pattern
    for name in stale + keep:
        with open(name, "wb") as f:
            f.write(b"x" * 100)
        os.utime(name, (old, old))
    young = f".c.npz.{dead.pid}.fedcba98.rnndsl-tmp"           # newer than this process
    with open(young, "wb") as f:
        f.write(b"x")
    status, _, err = cli("run", _spec('npz("ok.npz")'), "--quiet", "--out", "c.npz")
    assert status == 0, err
    left = set(os.listdir("."))
    assert not left & set(stale)
    assert set(keep) | {young} <= left
