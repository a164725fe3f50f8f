"""Hostile and broken data files and options (issue 15): every problem is a DataError naming
the file, the array or option, and the figure; nothing is unpickled, nothing is allocated
from a declared shape before it is checked, and members nobody asks for are never read."""

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from rnndsl.data import addition, copy_task, load_arrays, load_csv, load_glove, load_labelled_text, sine
from rnndsl.errors import DataError


def _npy(arr=None, header=None) -> bytes:
    f = io.BytesIO()
    if header is not None:
        np.lib.format.write_array_header_1_0(f, header)
    else:
        np.save(f, arr, allow_pickle=True)
    return f.getvalue()


def _npz(path, members: dict, deflate=()):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data, zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
    return path


X, Y = np.arange(24, dtype=np.float32).reshape(4, 2, 3), np.array([0, 1, 1, 0])


def test_declared_shape_of_10_12_is_a_data_error_naming_member_and_figure(tmp_path):
    huge = _npy(header={"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    path = _npz(tmp_path / "h.npz", {"x": huge, "y": _npy(Y)})
    with pytest.raises(DataError, match=r"h\.npz: array 'x' declares shape \(1000000, 1000000\) of float64 "
                                        r"\(8 TB \(8,000,000,000,000 bytes\)\) but holds 0 bytes"):
        load_arrays(path)
    (tmp_path / "h.npy").write_bytes(huge)
    with pytest.raises(DataError, match=r"h\.npy declares shape \(1000000, 1000000\) of float64 \(8 TB"):
        load_arrays(tmp_path / "h.npy")


def test_memory_bound_checked_before_allocating(tmp_path, monkeypatch):
    from rnndsl.data import npyfile

    path = _npz(tmp_path / "d.npz", {"x": _npy(X), "y": _npy(Y)})
    monkeypatch.setattr(npyfile, "memory_limit", lambda: 64)
    with pytest.raises(DataError, match=r"array 'x' declares shape \(4, 2, 3\) of float32: 96 bytes, more than "
                                        r"the memory bound of 64 bytes"):
        load_arrays(path)


def test_only_the_members_asked_for_are_read(tmp_path):
    bomb = _npy(header={"descr": "<f4", "fortran_order": False, "shape": (16 * 2**20,)}) + bytes(64 * 2**20)
    path = _npz(tmp_path / "b.npz", {"x": _npy(X), "y": _npy(Y), "bomb": bomb, "junk": b"garbage"},
                deflate={"bomb"})
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    try:
        x, y = load_arrays(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)


def test_a_member_claiming_more_than_deflate_can_hold(tmp_path):
    path = _npz(tmp_path / "d.npz", {"x": _npy(X), "y": _npy(Y)})
    data = bytearray(path.read_bytes())
    # y.npy's central directory entry (the second); its uncompressed size is at offset 24
    entry = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 1)
    assert data[entry + 46: entry + 46 + 5] == b"y.npy"
    data[entry + 24: entry + 28] = (2**31).to_bytes(4, "little")
    (tmp_path / "c.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"array 'y' claims 2.15 GB .* more than its .* stored data can hold"):
        load_arrays(tmp_path / "c.npz")


def test_object_string_and_structured_arrays_are_refused(tmp_path):
    path = _npz(tmp_path / "o.npz", {"x": _npy(np.array([{}, 1], dtype=object)), "y": _npy(Y)})
    with pytest.raises(DataError, match=r"array 'x' holds Python objects \(dtype object\); only numeric arrays "
                                        "are read, never pickled data"):
        load_arrays(path)
    path = _npz(tmp_path / "s.npz", {"x": _npy(X), "y": _npy(np.array(["a", "b", "a", "b"]))})
    with pytest.raises(DataError, match=r"array 'y' has dtype <U1; only numbers are read"):
        load_arrays(path)
    path = _npz(tmp_path / "v.npz", {"x": _npy(np.zeros(4, dtype=[("a", "<f4")])), "y": _npy(Y)})
    with pytest.raises(DataError, match=r"array 'x' has dtype .*only numbers are read"):
        load_arrays(path)


def test_big_endian_and_fortran_arrays_read_as_native(tmp_path):
    path = _npz(tmp_path / "e.npz", {"x": _npy(np.asfortranarray(X.astype(">f4"))), "y": _npy(Y.astype(">i8"))})
    x, y = load_arrays(path)
    assert x.dtype == np.float32 and x.dtype.isnative and y.dtype.isnative
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)


def test_truncated_and_bit_flipped_files(tmp_path):
    path = _npz(tmp_path / "d.npz", {"x": _npy(X), "y": _npy(Y)})
    data = path.read_bytes()
    for keep in (0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        (tmp_path / "t.npz").write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(DataError, match="t.npz.*truncated or corrupt"):
            load_arrays(tmp_path / "t.npz")
    flipped = bytearray(data)
    flipped[data.find(b"x.npy") + 5 + 128 + 20] ^= 0x01           # inside x's data
    (tmp_path / "f.npz").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="f.npz: array 'x' .*truncated or corrupt.*CRC"):
        load_arrays(tmp_path / "f.npz")
    (tmp_path / "t.npy").write_bytes(_npy(X)[:-5])
    with pytest.raises(DataError, match=r"t\.npy declares shape \(4, 2, 3\) .* but holds 91 bytes"):
        load_arrays(tmp_path / "t.npy")


def test_keys_must_be_names(tmp_path):
    path = _npz(tmp_path / "d.npz", {"x": _npy(X), "y": _npy(Y)})
    with pytest.raises(DataError, match="x_key must be the name of an array in d.npz, got 3"):
        load_arrays(path, x_key=3)
    path = _npz(tmp_path / "z.npz", {"x": _npy(np.float32(1)), "y": _npy(Y)})
    with pytest.raises(DataError, match="'x' is a single number"):
        load_arrays(path)


def test_glove_nan_inf_and_overflow_are_refused_with_the_line(tmp_path):
    vocab = {"<pad>": 0, "a": 1, "b": 2}
    p = tmp_path / "g.txt"
    for bad, shown in (("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("1e39", r"1e\+39")):
        p.write_text(f"a 0.1 0.2\nzz nan nan\nb 0.5 {bad}\n")
        with pytest.raises(DataError, match=rf"g\.txt:3: the vector of 'b' holds {shown} at value 2"):
            load_glove(p, vocab, 2)
    p.write_text("a 0.1 0.2\nzz nan nan\nb 0.5 1e39\n")
    m, found, _ = load_glove(p, vocab, 2, dtype=np.float64)      # finite in float64; an unused NaN row
    assert found == 2 and m[2, 1] == 1e39


def test_task_options_of_the_wrong_type_or_size():
    with pytest.raises(DataError, match="n must be a whole number >= 1, got 'a'"):
        addition(n="a")
    with pytest.raises(DataError, match="n must be a whole number >= 1, got 2.5"):
        sine(n=2.5, length=3)
    with pytest.raises(DataError, match="digits must be between 1 and 18, got 30"):
        addition(n=5, digits=30)
    with pytest.raises(DataError, match="seed must be >= 0, got -1"):
        copy_task(n=3, length=4, seed=-1)
    with pytest.raises(DataError, match="noise must be a finite number, got nan"):
        sine(n=3, length=4, noise=float("nan"))
    with pytest.raises(DataError, match=r"sine\(n=1000000000000, length=1000000\) would take .* bytes, more than "
                                        "the memory bound"):
        sine(n=10**12, length=10**6)
    with pytest.raises(DataError, match="a task of n=1000000000 sequences of length=1000000 would take"):
        copy_task(n=10**9, length=10**6)


def test_text_and_csv_options(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("a\thello world\nb\tbye\n")
    with pytest.raises(DataError, match="maxlen must be >= 1, got 0"):
        load_labelled_text(p, maxlen=0)
    with pytest.raises(DataError, match="labels must be a list of label strings"):
        load_labelled_text(p, labels="ab")
    with pytest.raises(DataError, match=r"t\.tsv: 2 texts of 1000000000000 tokens would take"):
        load_labelled_text(p, maxlen=10**12)
    p.write_text("a\t...\nb\t!!\n")
    with pytest.raises(DataError, match="no line has a word"):
        load_labelled_text(p)
    c = tmp_path / "d.csv"
    c.write_text("1,2,3\n")
    with pytest.raises(DataError, match="delimiter must be one character"):
        load_csv(c, delimiter="")
    with pytest.raises(DataError, match="label_column must be a column number"):
        load_csv(c, label_column="x")
    with pytest.raises(DataError, match="skip_header must be"):
        load_csv(c, skip_header="yes")
