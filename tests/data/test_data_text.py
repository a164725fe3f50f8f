import numpy as np
import pytest

from rnndsl.data import Vocabulary, load_labelled_text, pad_sequences, tokenize
from rnndsl.errors import DataError


def test_tokenize():
    assert tokenize("Hello, World! It's 2024 -- ça_va") == ["hello", "world", "it", "s", "2024", "ça", "va"]
    assert tokenize("") == []


def test_vocabulary_build_and_lookup():
    texts = ["the cat sat", "the dog sat", "a cat"]
    v = Vocabulary.build(texts)
    assert v.id_to_word[:2] == ["<pad>", "<oov>"]
    # by count (the 2, cat 2, sat 2 in first-seen order), then dog, a
    assert v.id_to_word[2:] == ["the", "cat", "sat", "dog", "a"]
    assert v["cat"] == 3 and v["unicorn"] == 1 and "dog" in v
    assert v.encode("The unicorn sat") == [2, 1, 4]
    assert v.decode([2, 1, 4, 0, 0]) == ["the", "<oov>", "sat"]
    capped = Vocabulary.build(texts, max_size=4)
    assert len(capped) == 4 and capped.id_to_word[2:] == ["the", "cat"]
    assert capped.encode("dog") == [1]
    assert Vocabulary.from_list(v.to_list()).word_to_id == v.word_to_id
    with pytest.raises(DataError):
        Vocabulary.build(texts, max_size=1)


def test_pad_sequences_like_keras():
    seqs = [[1, 2, 3], [4], []]
    np.testing.assert_array_equal(pad_sequences(seqs), [[1, 2, 3], [0, 0, 4], [0, 0, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, padding="post"), [[1, 2, 3], [4, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2), [[2, 3], [0, 4], [0, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2, truncating="post"), [[1, 2], [0, 4], [0, 0]])
    with pytest.raises(DataError, match="padding"):
        pad_sequences(seqs, padding="middle")


def test_load_labelled_text(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("pos\tA great, great film\nneg\tdull film\n\npos\tgreat fun\n", encoding="utf-8")
    x, y, vocab, labels = load_labelled_text(p, maxlen=3, padding="post")
    assert labels == ["neg", "pos"]
    assert y.tolist() == [1, 0, 1]
    assert x.shape == (3, 3)
    assert vocab.decode(x[0]) == ["great", "great", "film"]  # truncated at the start ("pre")
    assert vocab.decode(x[1]) == ["dull", "film"] and x[1, 2] == 0
    # reuse the vocabulary and labels for a second file
    q = tmp_path / "u.tsv"
    q.write_text("neg\tgreat unknownword\n")
    x2, y2, v2, l2 = load_labelled_text(q, vocab=vocab, labels=labels, maxlen=3)
    assert v2 is vocab and y2.tolist() == [0]
    assert x2[0].tolist() == [0, vocab["great"], 1]


def test_labelled_text_numeric_labels_and_errors(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("10\ta\n2\tb\n1\tc\n")
    _, y, _, labels = load_labelled_text(p)
    assert labels == ["1", "2", "10"] and y.tolist() == [2, 1, 0]
    p.write_text("pos\tok\nno tab here\n")
    with pytest.raises(DataError, match=r"t\.tsv:2: expected 'label<TAB>text'"):
        load_labelled_text(p)
    p.write_text("pos\tok\n")
    with pytest.raises(DataError, match="'pos' is not one of"):
        load_labelled_text(p, labels=["a", "b"])
    with pytest.raises(DataError, match="not found"):
        load_labelled_text(tmp_path / "none.tsv")
