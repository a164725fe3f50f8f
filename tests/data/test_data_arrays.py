import numpy as np
import pytest

from rnndsl.data import load_arrays, load_csv
from rnndsl.errors import DataError


def test_npz_and_npy(tmp_path):
    x, y = np.arange(12.0).reshape(4, 3), np.array([0, 1, 1, 0])
    np.savez(tmp_path / "d.npz", x=x, y=y, feats=x * 2)
    x2, y2 = load_arrays(tmp_path / "d.npz")
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    f, none = load_arrays(tmp_path / "d.npz", x_key="feats", y_key=None)
    assert none is None and f[1, 0] == 6.0
    np.save(tmp_path / "a.npy", x)
    a, b = load_arrays(tmp_path / "a.npy")
    assert b is None and a.shape == (4, 3)


def test_array_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_arrays(tmp_path / "missing.npz")
    np.savez(tmp_path / "d.npz", x=np.ones(3), label=np.ones(3))
    with pytest.raises(DataError, match="no array 'y'.*x, label"):
        load_arrays(tmp_path / "d.npz")
    with pytest.raises(DataError, match="did you mean 'label'"):
        load_arrays(tmp_path / "d.npz", y_key="labels")
    np.savez(tmp_path / "n.npz", x=np.ones(3), y=np.ones(2))
    with pytest.raises(DataError, match="3 samples but 'y' has 2"):
        load_arrays(tmp_path / "n.npz")
    (tmp_path / "t.npz").write_text("not numpy")
    with pytest.raises(DataError, match="not a NumPy"):
        load_arrays(tmp_path / "t.npz")
    np.save(tmp_path / "o.npy", np.array([{}, 1], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickle"):
        load_arrays(tmp_path / "o.npy")
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.npz"):
        load_arrays(tmp_path / "cut.npz")


def test_csv_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4)).round(5)
    y = rng.integers(0, 3, 20)
    path = tmp_path / "d.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="a,b,c,d,label", comments="")
    x2, y2 = load_csv(path)
    np.testing.assert_allclose(x2, x, rtol=1e-6)
    assert x2.dtype == np.float32
    np.testing.assert_array_equal(y2, y)
    assert y2.dtype == np.int64
    x3, y3 = load_csv(path, label_column=0)
    np.testing.assert_allclose(y3, x[:, 0], rtol=1e-12)
    assert x3.shape == (20, 4)
    x4, none = load_csv(path, label_column=None)
    assert none is None and x4.shape == (20, 5)


def test_csv_header_detection_and_errors(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("1,2,3\n\n4,5,6\n")
    x, y = load_csv(p)
    assert x.tolist() == [[1, 2], [4, 5]] and y.tolist() == [3, 6]
    x, y = load_csv(p, skip_header=True)
    assert x.tolist() == [[4, 5]]
    p.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(DataError, match=r"a\.csv:3: column 2: cannot read 'x'"):
        load_csv(p)
    p.write_text("1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"a\.csv:2: expected 2 columns, found 3"):
        load_csv(p)
    p.write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        load_csv(p)
    with pytest.raises(DataError, match="not found"):
        load_csv(tmp_path / "none.csv")
    p.write_text("1,2\n")
    with pytest.raises(DataError, match="label_column 5"):
        load_csv(p, label_column=5)
