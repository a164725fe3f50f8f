"""Pretrained GloVe-format vectors into an embed table; nearest words; frozen tables."""

import numpy as np
import pytest

import rnndsl
from rnndsl.data import Vocabulary


@pytest.fixture
def vectors(tmp_path):
    p = tmp_path / "vectors.txt"
    p.write_text("king 1 0 0\nqueen 0.9 0.1 0\napple 0 0 1\npear 0 0.1 0.9\n")
    return p


def test_load_vectors_counts_missing_and_freezes(vectors):
    vocab = {"king": 1, "queen": 2, "apple": 3, "banana": 4}
    m = rnndsl.compile(f'embed(6, 3, weights="{vectors}", trainable=false) | lstm(2) | dense(2)')
    info = m.load_embedding_vectors(vocab)
    assert info["found"] == 3 and info["missing"] == 1 and info["missing_words"] == ["banana"]
    assert "1 initialised randomly" in info["message"] and "frozen" in info["message"]
    E = m.get_weights()[0]
    np.testing.assert_allclose(E[1], [1, 0, 0])
    np.testing.assert_allclose(E[3], [0, 0, 1])
    assert not E[0].any() and np.abs(E[4]).max() <= 0.05
    m.configure(loss="sparse_categorical_crossentropy", optimizer="sgd")
    m.train_on_batch(np.array([[1, 2, 3]]), [1])
    np.testing.assert_array_equal(m.get_weights()[0], E)        # trainable=false: unchanged


def test_nearest_words(vectors):
    vocab = Vocabulary(["king", "queen", "apple", "pear"])
    m = rnndsl.compile("embed(10, 3) | lstm(2)")
    m.load_embedding_vectors(vocab, vectors)
    words = [w for w, _ in m.nearest_words("king", vocab, k=2)]
    assert words[0] == "queen"
    assert m.nearest_words("apple", vocab, k=1)[0][0] == "pear"


def test_vocabulary_larger_than_table(vectors):
    m = rnndsl.compile("embed(3, 3) | lstm(2)")
    with pytest.raises(rnndsl.WeightsError, match="holds 3 rows"):
        m.load_embedding_vectors({"king": 5}, vectors)
