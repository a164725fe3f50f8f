import os
import zipfile

import numpy as np
import pytest

import rnndsl.train.checkpoint as ck
from rnndsl.errors import CheckpointError
from rnndsl.train.checkpoint import load_checkpoint, save_checkpoint

ARRAYS = {"lstm/kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
          "opt/m/0": np.linspace(0, 1, 5), "iterations": np.array(7, dtype=np.int64),
          "file": np.zeros(2)}
META = {"epoch": 3, "best": float("inf"), "names": ["a", "b"], "np": np.float32(0.5)}


def test_round_trip(tmp_path):
    path = tmp_path / "model.ckpt.npz"
    assert save_checkpoint(path, ARRAYS, META) == path
    arrays, meta = load_checkpoint(path)
    assert set(arrays) == set(ARRAYS)
    for k, v in ARRAYS.items():
        np.testing.assert_array_equal(arrays[k], v)
        assert arrays[k].dtype == v.dtype
    assert meta == {"epoch": 3, "best": float("inf"), "names": ["a", "b"], "np": 0.5}
    # plain numpy can read it without pickle
    with np.load(path, allow_pickle=False) as z:
        assert "lstm/kernel" in z.files
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt.npz"]  # no temp left


def test_crash_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"w": np.ones(3)}, {"epoch": 1})

    def boom(f, payload):
        f.write(b"PK\x03\x04 partial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ck, "_write_npz", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_checkpoint(path, {"w": np.zeros(3)}, {"epoch": 2})
    arrays, meta = load_checkpoint(path)
    assert meta["epoch"] == 1 and np.all(arrays["w"] == 1)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_crash_in_replace_and_oserror_wrapped(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"w": np.ones(3)}, {"epoch": 1})

    def bad_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.os, "replace", bad_replace)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(path, {"w": np.zeros(3)}, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)[1]["epoch"] == 1
    assert len(list(tmp_path.iterdir())) == 1


def test_fsync_called(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(ck.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    save_checkpoint(tmp_path / "c.npz", {"w": np.ones(1)}, {})
    assert len(calls) >= 2  # the file, then the directory


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"w": np.arange(1000.0)}, {"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_corrupt_member(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"w": np.arange(1000.0)}, {"epoch": 1})
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF  # inside w's data: the zip CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_foreign_files(tmp_path):
    npz = tmp_path / "other.npz"
    np.savez(npz, w=np.ones(2))
    with pytest.raises(CheckpointError, match="not an rnndsl checkpoint"):
        load_checkpoint(npz)
    npy = tmp_path / "a.npy"
    np.save(npy, np.ones(2))
    with pytest.raises(CheckpointError, match=r"\.npy"):
        load_checkpoint(npy)
    txt = tmp_path / "t.txt"
    txt.write_text("hello")
    with pytest.raises(CheckpointError, match="not an rnndsl checkpoint"):
        load_checkpoint(txt)
    tagged = tmp_path / "tag.npz"
    np.savez(tagged, __rnndsl_meta__=np.frombuffer(b'{"format": "keras", "version": 1}', np.uint8))
    with pytest.raises(CheckpointError, match="format tag 'keras'"):
        load_checkpoint(tagged)


def test_newer_version(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    monkeypatch.setattr(ck, "FORMAT_VERSION", 99)
    save_checkpoint(path, {"w": np.ones(1)}, {})
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="version 99, newer"):
        load_checkpoint(path)


def test_save_errors(tmp_path):
    with pytest.raises(CheckpointError, match="reserved"):
        save_checkpoint(tmp_path / "c.npz", {"__rnndsl_meta__": np.ones(1)}, {})
    with pytest.raises(CheckpointError, match="object"):
        save_checkpoint(tmp_path / "c.npz", {"w": np.array([{}, 1], dtype=object)}, {})
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "c.npz", {"w": np.ones(1)}, {"f": object()})
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tmp_path / "no" / "c.npz", {"w": np.ones(1)}, {})
    assert list(tmp_path.iterdir()) == []


def test_zip_is_plain_npz(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"w": np.ones(1)}, {})
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["__rnndsl_meta__.npy", "w.npy"]
