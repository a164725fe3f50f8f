"""Hostile checkpoints (issue 15): a checkpoint is data, never code, and never asks for more
memory than the model it holds. Crafted generator names, extra or huge members, members
of the wrong shape or dtype, and metadata of the wrong type are CheckpointErrors."""

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

import rnndsl
from rnndsl.errors import CheckpointError
from rnndsl.train.checkpoint import META_KEY, load_checkpoint, save_checkpoint

SPEC = "input x: float[4, 3]\noutput x | lstm(4) | dense(2)"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A configured, trained-for-one-step model saved with optimizer state."""
    m = rnndsl.compile(SPEC, seed=1).configure(loss="sparse_categorical_crossentropy", optimizer="adam")
    x = np.random.default_rng(0).random((8, 4, 3)).astype(np.float32)
    m.train_on_batch(x, np.arange(8) % 2)
    path = tmp_path_factory.mktemp("ck") / "m.npz"
    m.save(path)
    return path, m, x


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write(path, members: dict[str, bytes], deflate=()):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data, zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
    return path


def _npy_header(shape, descr="<f4") -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
    return f.getvalue()


def _with_meta(saved, tmp_path, change):
    path = saved[0]
    arrays, meta = load_checkpoint(path)
    change(meta)
    return save_checkpoint(tmp_path / "c.npz", arrays, meta)


def test_round_trip_still_exact(saved):
    path, m, x = saved
    back = rnndsl.load_model(path)
    np.testing.assert_array_equal(back.predict(x), m.predict(x))
    assert back.train_config.optimizer.iterations == 1
    assert back.fit_rng.bit_generator.state == m.fit_rng.bit_generator.state


@pytest.mark.parametrize("name", ["test", "show_config", "seed", "get_state", "BitGenerator"])
def test_generator_name_outside_the_list_runs_nothing(saved, tmp_path, monkeypatch, name):
    called = []
    monkeypatch.setattr(np.random, name, lambda *a, **k: called.append(a) or np.random.PCG64(), raising=False)

    def change(meta):
        meta["rng"]["fit"]["bit_generator"] = name

    path = _with_meta(saved, tmp_path, change)
    with pytest.raises(CheckpointError, match=f"bit generator '{name}'.*only PCG64, PCG64DXSM, Philox, SFC64, MT19937"):
        rnndsl.load_model(path)
    assert called == []


def test_generator_state_not_a_string_or_broken(saved, tmp_path):
    path = _with_meta(saved, tmp_path, lambda meta: meta["rng"]["fit"].update(bit_generator=["PCG64"]))
    with pytest.raises(CheckpointError, match="names bit generator a list"):
        rnndsl.load_model(path)
    path = _with_meta(saved, tmp_path, lambda meta: meta["rng"]["dropout"].update(state="zzz"))
    with pytest.raises(CheckpointError, match="bad dropout generator state"):
        rnndsl.load_model(path)


@pytest.mark.parametrize("kind", ["MT19937", "Philox", "SFC64", "PCG64DXSM"])
def test_every_listed_generator_round_trips(saved, tmp_path, kind):
    cls = getattr(np.random, kind)
    state = cls(5).state
    path = _with_meta(saved, tmp_path, lambda meta: meta["rng"].update(fit=json.loads(json.dumps(
        state, default=lambda o: o.tolist()))))
    m = rnndsl.load_model(path)
    assert m.fit_rng.random() == np.random.Generator(cls(5)).random()


def test_extra_members_are_never_read(saved, tmp_path):
    """A small file with a member that inflates to 64 MB (and one that is garbage): loading reads
    only the members the spec needs."""
    members = _members(saved[0])
    members["junk.npy"] = b"\x93NUMPY garbage"
    members["bomb.npy"] = _npy_header((16 * 2**20,)) + bytes(64 * 2**20)
    path = _write(tmp_path / "bomb.npz", members, deflate={"bomb.npy"})
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    try:
        m = rnndsl.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak
    np.testing.assert_array_equal(m.predict(saved[2]), saved[1].predict(saved[2]))


def test_declared_huge_shape_is_refused_before_allocating(saved, tmp_path):
    members = _members(saved[0])
    members["weight/0000.npy"] = _npy_header((10**12,))
    path = _write(tmp_path / "huge.npz", members)
    with pytest.raises(CheckpointError, match=r"array 'weight/0000' has shape \(1000000000000,\), expected \(3, 16\)"):
        rnndsl.load_model(path)
    # the generic reader has no expected shape: the member's own size and the memory bound catch it
    with pytest.raises(CheckpointError, match=r"weight/0000' declares shape \(1000000000000,\) of float32 "
                                              r"\(4 TB .*\) but holds 0 bytes"):
        load_checkpoint(path)


def test_shape_within_the_file_but_over_the_memory_bound(saved, tmp_path, monkeypatch):
    from rnndsl.data import npyfile

    monkeypatch.setattr(npyfile, "memory_limit", lambda: 100)
    with pytest.raises(CheckpointError, match=r"weight/0000' declares shape \(3, 16\) of float32: 192 bytes, "
                                              r"more than the memory bound of 100 bytes"):
        rnndsl.load_model(saved[0])


def test_member_of_wrong_shape_dtype_or_objects(saved, tmp_path):
    members = _members(saved[0])
    f = io.BytesIO()
    np.save(f, np.zeros((16, 3), np.float32))
    path = _write(tmp_path / "t.npz", {**members, "weight/0000.npy": f.getvalue()})
    with pytest.raises(CheckpointError, match=r"has shape \(16, 3\), expected \(3, 16\)"):
        rnndsl.load_model(path)
    f = io.BytesIO()
    np.save(f, np.array([[{}] * 16] * 3, dtype=object), allow_pickle=True)
    path = _write(tmp_path / "o.npz", {**members, "weight/0000.npy": f.getvalue()})
    with pytest.raises(CheckpointError, match="Python objects"):
        rnndsl.load_model(path)
    f = io.BytesIO()
    np.save(f, np.full((3, 16), "a"))
    path = _write(tmp_path / "s.npz", {**members, "weight/0000.npy": f.getvalue()})
    with pytest.raises(CheckpointError, match="dtype <U1; only numbers"):
        rnndsl.load_model(path)
    f = io.BytesIO()
    np.save(f, np.zeros((3,), np.float32))
    path = _write(tmp_path / "u.npz", {**members, "optimizer/nope/0.npy": f.getvalue()})
    with pytest.raises(CheckpointError, match="optimizer state entry 'nope/0' does not belong to Adam"):
        rnndsl.load_model(path)


def test_bit_flip_in_weights_and_truncation(saved, tmp_path):
    data = bytearray(saved[0].read_bytes())
    with zipfile.ZipFile(saved[0]) as z:
        info = z.getinfo("weight/0001.npy")
    data[info.header_offset + 30 + len(info.filename) + 140] ^= 0x10   # inside the member's data
    (tmp_path / "f.npz").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weight/0001.*truncated or corrupt.*CRC"):
        rnndsl.load_model(tmp_path / "f.npz")
    for keep in (0.2, 0.5, 0.9, 0.99):
        (tmp_path / "t.npz").write_bytes(bytes(data[: int(len(data) * keep)]))
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            rnndsl.load_model(tmp_path / "t.npz")


@pytest.mark.parametrize("key, value, message", [
    ("dtype", 5, "'dtype' must be one of float32, float64, got int"),
    ("dtype", "int8", "dtype 'int8' is not one of float32, float64"),
    ("dtype", "object", "dtype 'object' is not one of"),
    ("seed", "3", "'seed' must be a whole number >= 0, got str"),
    ("seed", -1, "seed and epoch must be >= 0"),
    ("seed", True, "'seed' must be a whole number"),
    ("epoch", 2.5, "'epoch' must be a whole number >= 0, got float"),
    ("epoch", None, "'epoch' must be a whole number"),
    ("spec", 7, "'spec' must be the spec text, got int"),
    ("spec", ["input"], "'spec' must be the spec text, got list"),
    ("file", {}, "'file' must be a file name"),
    ("weights", "x", "'weights' must be a list"),
    ("weights", [[1, 2]], "do not match its spec"),
    ("rng", [], "'rng' must be an object"),
    ("train", "adam", "'train' must be an object"),
    ("train", {"losses": 5}, "train 'losses' must be a list"),
    ("train", {"losses": ["mse"], "optimizer": {"name": [1]}}, "train 'optimizer'"),
    ("train", {"losses": ["nope"], "optimizer": "adam", "metrics": [], "from_logits": [False]},
     "training configuration in the checkpoint is not valid: unknown loss 'nope'"),
    ("train", {"losses": ["mse"], "optimizer": "adam", "metrics": [], "from_logits": [1]},
     "'from_logits' must be a list of 1 true/false"),
])
def test_metadata_of_the_wrong_type(saved, tmp_path, key, value, message):
    path = _with_meta(saved, tmp_path, lambda meta: meta.__setitem__(key, value))
    with pytest.raises(CheckpointError, match=message):
        rnndsl.load_model(path)


def test_missing_spec_and_deep_json(saved, tmp_path):
    path = _with_meta(saved, tmp_path, lambda meta: meta.pop("spec"))
    with pytest.raises(CheckpointError, match="no 'spec' in its metadata"):
        rnndsl.load_model(path)
    deep = ("[" * 100000 + "]" * 100000).encode()
    f = io.BytesIO()
    np.save(f, np.frombuffer(deep, np.uint8))
    path = _write(tmp_path / "deep.npz", {f"{META_KEY}.npy": f.getvalue()})
    with pytest.raises(CheckpointError, match="corrupt metadata \\(RecursionError"):
        rnndsl.load_model(path)


def test_optimizer_iterations_must_be_a_whole_number(saved, tmp_path):
    arrays, meta = load_checkpoint(saved[0])
    arrays["optimizer/iterations"] = np.array(np.nan)
    path = save_checkpoint(tmp_path / "c.npz", arrays, meta)
    with pytest.raises(CheckpointError, match="'iterations' must be a whole number"):
        rnndsl.load_model(path)
    arrays["optimizer/iterations"] = np.zeros(3, np.int64)
    path = save_checkpoint(tmp_path / "c.npz", arrays, meta)
    with pytest.raises(CheckpointError, match=r"iterations' has shape \(3,\), expected \(\)"):
        rnndsl.load_model(path)
