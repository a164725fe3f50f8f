import numpy as np
import pytest

from rnndsl.data import Vocabulary, load_glove, nearest
from rnndsl.errors import DataError

VECS = {
    "king": [0.9, 0.8, 0.1],
    "queen": [0.85, 0.82, 0.15],
    "apple": [-0.7, 0.1, 0.9],
    "pear": [-0.6, 0.2, 0.85],
    "unused": [1.0, 1.0, 1.0],
}


def write(path, vecs, extra=""):
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vecs.items()) + extra,
                    encoding="utf-8")
    return path


def test_load_glove_matrix(tmp_path):
    path = write(tmp_path / "v.txt", VECS)
    vocab = {"<pad>": 0, "king": 1, "apple": 2, "zebra": 3, "queen": 4, "pear": 5}
    m, n_found, missing = load_glove(path, vocab, 3, rng=np.random.default_rng(0))
    assert m.shape == (6, 3) and m.dtype == np.float32
    assert n_found == 4 and missing == ["zebra"]
    np.testing.assert_allclose(m[1], VECS["king"], rtol=1e-6)
    np.testing.assert_allclose(m[5], VECS["pear"], rtol=1e-6)
    assert np.all(m[0] == 0)
    assert np.all(np.abs(m[3]) <= 0.05) and np.any(m[3] != 0)
    # same seed, same random rows; independent of line order
    lines = path.read_text().splitlines()
    path2 = tmp_path / "w.txt"
    path2.write_text("\n".join(reversed(lines)) + "\n")
    m2, _, _ = load_glove(path2, vocab, 3, rng=0)
    m1, _, _ = load_glove(path, vocab, 3, rng=0)
    np.testing.assert_array_equal(m1, m2)


def test_with_vocabulary_object_and_nearest(tmp_path):
    path = write(tmp_path / "v.txt", VECS)
    vocab = Vocabulary(["king", "queen", "apple", "pear"])
    m, n, missing = load_glove(path, vocab, 3, rng=1)
    assert n == 4 and missing == ["<oov>"]
    res = nearest(m, "king", vocab, k=2)
    assert res[0][0] == "queen" and res[0][1] > 0.99
    q = m[vocab["apple"]]
    by_vec = nearest(m, q, vocab, k=2)
    assert by_vec[0][0] == "apple" and by_vec[0][1] == pytest.approx(1.0, abs=1e-6)
    assert by_vec[1][0] == "pear"
    sims = [s for _, s in nearest(m, "pear", vocab, k=10)]
    assert sims == sorted(sims, reverse=True) and len(sims) == 4  # pad and the query left out
    with pytest.raises(DataError, match="did you mean 'king'"):
        nearest(m, "kign", vocab)


def test_errors_name_file_and_line(tmp_path):
    path = write(tmp_path / "v.txt", VECS, extra="broken 0.1 0.2\n")
    with pytest.raises(DataError, match=r"v\.txt:6: expected 3 values .*found 2"):
        load_glove(path, {"king": 1}, 3, rng=0)
    with pytest.raises(DataError, match=r"d\.txt:1: .*3 values but dim=4"):
        load_glove(write(tmp_path / "d.txt", VECS), {"king": 1}, 4, rng=0)
    bad = tmp_path / "b.txt"
    bad.write_text("king 0.1 x 0.3\n")
    with pytest.raises(DataError, match=r"b\.txt:1: .*not a number"):
        load_glove(bad, {"king": 1}, 3, rng=0)
    with pytest.raises(DataError, match="not found"):
        load_glove(tmp_path / "none.txt", {"king": 1}, 3)


def test_word2vec_header_and_gzip(tmp_path):
    import gzip

    text = "2 3\nking 1 2 3\nqueen 4 5 6\n"
    path = tmp_path / "v.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write(text)
    m, n, _ = load_glove(path, {"queen": 1}, 3, rng=0)
    assert n == 1 and m[1].tolist() == [4, 5, 6]
