"""Labelled text from CSV columns and class folders, the TextEncoder that checkpoints keep,
and npz arrays named after a model's inputs and outputs (issue 19, points 1, 3 and 6)."""

import json

import numpy as np
import pytest

from rnndsl.data import TextEncoder, Vocabulary, load_labelled_text, load_text_csv, load_text_folder
from rnndsl.data.arrays import load_named_arrays
from rnndsl.data.text import read_utf8
from rnndsl.errors import DataError
from spec_helpers import check_case

CSV = ('id,review,sentiment\n'
       '1,A great film,pos\n'
       '2,"Dull, so dull",neg\n'
       '\n'
       '3,"He said ""great""\nand left",pos\n'
       '4,,neg\n')


def test_csv_columns_by_name_quoted_fields_and_blank_lines(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text(CSV, encoding="utf-8")
    x, y, vocab, labels = load_text_csv(p, text="review", label="sentiment", maxlen=4, padding="post")
    assert labels == ["neg", "pos"] and y.tolist() == [1, 0, 1, 0]
    assert vocab.decode(x[0]) == ["a", "great", "film"]
    assert vocab.decode(x[1]) == ["dull", "so", "dull"]                 # the comma stayed inside the field
    assert vocab.decode(x[2]) == ["said", "great", "and", "left"]        # a quoted line break; "pre" truncating
    assert x[3].tolist() == [0, 0, 0, 0]                                  # an empty text is all padding
    # the same columns by number (counted from 0), the header skipped on request
    x2, y2, _, _ = load_text_csv(p, text=1, label=2, skip_header=True, maxlen=4, padding="post")
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    # as the TSV source does: same vocabulary order, same ids
    t = tmp_path / "r.tsv"
    t.write_text("pos\tA great film\nneg\tDull, so dull\npos\tHe said \"great\" and left\nneg\t\n")
    xt, yt, vt, lt = load_labelled_text(t, maxlen=4, padding="post")
    assert vt.to_list() == vocab.to_list() and lt == labels
    np.testing.assert_array_equal(xt, x)


def test_csv_utf8_bom_other_delimiter_no_labels(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes("\ufefftexte;étiquette\nÇa va très bien;oui\n".encode("utf-8"))
    x, y, vocab, labels = load_text_csv(p, text="texte", label="étiquette", delimiter=";")
    assert vocab.decode(x[0]) == ["ça", "va", "très", "bien"] and labels == ["oui"]
    x, y, _, labels = load_text_csv(p, text=0, skip_header=True, delimiter=";")
    assert y is None and labels is None and x.shape == (1, 4)


@pytest.mark.parametrize("content, kw, message", [
    (CSV, {"text": "reviews", "label": "sentiment"},
     r"r\.csv:1: no column 'reviews' \(the columns are: id, review, sentiment\); did you mean 'review'"),
    (CSV, {"text": 5, "label": 2}, r"r\.csv:1: text names column 5, but the rows have 3 column\(s\)"),
    (CSV, {"text": "review", "label": "sentiment", "skip_header": False}, "has no header row, so text cannot name column 'review'"),
    ("id,review,sentiment\n1,fine,pos\n2,too,many,fields\n", {"text": "review", "label": "sentiment"},
     r"r\.csv:3: expected 3 fields \(as line 1\), found 4; a field that holds the delimiter ',' goes in double"),
    ("id,review,sentiment\n1,fine,pos\n2,empty, \n", {"text": "review", "label": "sentiment"},
     r"r\.csv:3: empty label \(column 'sentiment'\)"),
    ("a,a,b\n1,x,y\n", {"text": "a", "label": "b"}, r"r\.csv:1: the header names column 'a' 2 times"),
    ("review,sentiment\n", {"text": "review", "label": "sentiment"}, r"r\.csv holds no data rows \(only its header\)"),
    (CSV, {"text": "review", "label": "review"}, "text and label name the same column"),
    (CSV, {"text": -1}, "text must be a column: its header name, or its number counted from 0"),
    (CSV, {"text": "review", "labels": ["pos"], "label": "sentiment"}, r"r\.csv: label 'neg' is not one of \['pos'\]"),
    (CSV, {"text": "review", "maxlen": 0}, "maxlen must be >= 1, got 0"),
])
def test_csv_errors_name_the_file_line_and_column(tmp_path, content, kw, message):
    p = tmp_path / "r.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_text_csv(p, **kw)


def test_non_utf8_bytes_are_named_by_line_and_column(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes(b"review,sentiment\nok,pos\nna\xefve,neg\n")
    with pytest.raises(DataError, match=r"r\.csv:3:3: not UTF-8 text \(byte 0xef\); save the CSV file as UTF-8"):
        load_text_csv(p, text="review", label="sentiment")
    t = tmp_path / "t.tsv"
    t.write_bytes(b"pos\tfine\n\xffneg\tbad\n")
    with pytest.raises(DataError, match=r"t\.tsv:2:1: not UTF-8 text \(byte 0xff\)"):
        load_labelled_text(t)
    with pytest.raises(DataError, match="cannot read text file"):
        read_utf8(tmp_path / "missing.txt")


def _folder(tmp_path, files: dict) -> object:
    root = tmp_path / "train"
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return root


def test_folder_of_class_folders_as_keras_lists_it(tmp_path):
    root = _folder(tmp_path, {"pos/b.txt": "Great fun", "pos/a.TXT": "great\ngreat film", "pos/notes.md": "skip",
                              "neg/x.txt": "dull film", "neg/deeper/y.txt": "", "neg/z.txt": "so dull",
                              ".hidden/h.txt": "not a class", "README.txt": "not in a class"})
    x, y, vocab, labels = load_text_folder(root)
    assert labels == ["neg", "pos"]                     # sorted folder names; hidden ones left out
    # neg: x.txt, z.txt (its own folder first), then deeper/y.txt; pos: a.TXT, b.txt (file names sorted)
    assert y.tolist() == [0, 0, 0, 1, 1]
    assert [vocab.decode(r) for r in x] == [["dull", "film"], ["so", "dull"], [], ["great", "great", "film"],
                                            ["great", "fun"]]
    # labels: a subset of the class folders, in the order given (Keras's class_names)
    x, y, _, labels = load_text_folder(root, labels=["pos"], maxlen=2)
    assert labels == ["pos"] and y.tolist() == [0, 0] and x.shape == (2, 2)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        load_text_folder(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        load_text_folder(tmp_path / "file.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no class folders"):
        load_text_folder(empty)
    root = _folder(tmp_path, {"pos/a.txt": "good", "neg/a.md": "bad"})
    with pytest.raises(DataError, match=r"train/neg: class folder 'neg' holds no \.txt files"):
        load_text_folder(root)
    with pytest.raises(DataError, match=r"labels names 'poss', which is not one of its class folders .*did you mean"):
        load_text_folder(root, labels=["poss"])
    root = _folder(tmp_path / "2", {"pos/a.txt": "good", "neg/b.txt": b"ba\x80d"})
    with pytest.raises(DataError, match=r"neg/b\.txt:1:3: not UTF-8 text"):
        load_text_folder(root)


def test_text_encoder_tokenizes_as_training_did_and_round_trips_json():
    vocab = Vocabulary(["great", "film", "dull"])
    enc = TextEncoder(vocab, 3, padding="pre", truncating="post", labels=["neg", "pos"], input="review")
    ids = enc.encode(["A GREAT film!", "", "great great great film", "zzz"])
    assert ids.dtype == np.int32
    # ids: great 2, film 3; OOV 1; padding 0 at the front; over-long texts cut at the end
    assert ids.tolist() == [[1, 2, 3], [0, 0, 0], [2, 2, 2], [0, 0, 1]]
    cfg = json.loads(json.dumps(enc.to_config()))
    assert cfg["tokenizer"] == "words" and cfg["vocabulary"] == ["<pad>", "<oov>", "great", "film", "dull"]
    again = TextEncoder.from_config(cfg)
    np.testing.assert_array_equal(again.encode(["A GREAT film!", "zzz"]), ids[[0, 3]])
    assert (again.labels, again.input, again.maxlen, again.truncating) == (["neg", "pos"], "review", 3, "post")
    with pytest.raises(DataError, match="give a list of texts, not one string"):
        enc.encode("one text")
    with pytest.raises(DataError, match="text 1 is a int"):
        enc.encode(["ok", 3])


@pytest.mark.parametrize("change, message", [
    ({"tokenizer": "bpe"}, "tokenizer 'bpe'"),
    ({"lowercase": False}, "this rnndsl knows only 'words', lower-cased"),
    ({"vocabulary": ["<pad>", "<oov>", "a", "a"]}, "must not repeat"),
    ({"vocabulary": "abc"}, "vocabulary must be a list of strings"),
    ({"maxlen": True}, "maxlen must be a whole number"),
    ({"maxlen": 0}, "maxlen must be >= 1"),
    ({"padding": "middle"}, "padding must be 'pre' or 'post'"),
    ({"labels": ["a", "a"]}, "labels must not repeat"),
    ({"labels": "ab"}, "labels must be a list of label strings"),
    ({"input": 3}, "input must be an input's name"),
])
def test_text_encoder_config_is_checked(change, message):
    cfg = {**TextEncoder(Vocabulary(["a"]), 4).to_config(), **change}
    with pytest.raises(DataError, match=message):
        TextEncoder.from_config(cfg)


def test_npz_arrays_named_after_inputs_and_outputs(tmp_path):
    rng = np.random.default_rng(0)
    src, tgt, out = rng.integers(0, 5, (6, 3)), rng.integers(0, 5, (6, 3)), rng.integers(0, 5, (6, 3))
    p = tmp_path / "d.npz"
    np.savez(p, src=src, tgt=tgt, dense=out, extra=np.zeros(2))
    xs, y = load_named_arrays(p, ["src", "tgt"], ["dense"])
    np.testing.assert_array_equal(xs[1], tgt)
    np.testing.assert_array_equal(y, out)
    np.savez(p, src=src, tgt=tgt, y=out)
    assert load_named_arrays(p, ["src", "tgt"], ["dense"])[1].shape == (6, 3)     # 'y' for the only output
    np.savez(p, a=src, b=tgt[:, 0], c=out[:, :1].astype(float))
    xs, ys = load_named_arrays(p, ["a"], ["b", "c"])
    assert isinstance(ys, list) and ys[0].shape == (6,) and ys[1].shape == (6, 1)
    np.savez(p, x=src, y=out)
    assert load_named_arrays(p, ["src", "tgt"], ["dense"]) is None                  # read as x/y instead
    np.save(tmp_path / "one.npy", src)
    assert load_named_arrays(tmp_path / "one.npy", ["src"], ["dense"]) is None
    np.savez(p, src=src, y=out)
    with pytest.raises(DataError, match=r"arrays for the input\(s\) src but not for tgt"):
        load_named_arrays(p, ["src", "tgt"], ["dense"])
    np.savez(p, src=src, tgt=tgt)
    with pytest.raises(DataError, match=r"not for the output\(s\) dense .*name the targets after the outputs "
                                        r"\(dense\) or 'y'"):
        load_named_arrays(p, ["src", "tgt"], ["dense"])
    np.savez(p, src=src, tgt=tgt[:4], dense=out)
    with pytest.raises(DataError, match="the same number of samples; they hold 'src' 6, 'tgt' 4, 'dense' 6"):
        load_named_arrays(p, ["src", "tgt"], ["dense"])


TRAIN = ('input x: int[?]\noutput x | embed(9, 4) | lstm(4) | dense(2)\ntrain {\n'
         '  loss = "sparse_categorical_crossentropy"\n  data = %s\n}\n')


@pytest.mark.parametrize("case", [
    ('csv("r.csv", text="review")', '"review"', "csv(text=...) needs label=, the column of the labels", 'label="'),
    ('csv("r.csv", text="review", label="s", label_column=2)', "2",
     "with text=, the labels' column is given as label=", None),
    ('csv("r.csv", maxlen=5)', "5", "csv option maxlen goes with text=", "csv(\"reviews.csv\", text="),
    ('csv("r.csv", label="s")', '"s"', "csv option label goes with text=", None),
    ('csv("r.csv", text=-1, label=2)', "-1", "text takes a column: its header name in double quotes, or its "
                                             "number counted from 0", None),
    ('csv("r.csv", text="", label=2)', '""', "text takes a column", None),
    ('csv("r.csv", text=1, label=1)', "1", "text and label name the same column 1", None, 1),
    ('csv("r.csv", text="a", label="b", padding="left")', '"left"', "padding takes one of pre, post", None),
    ("folder(maxlen=3)", "folder(", "folder needs a folder path", 'folder("data/train")'),
    ('folder("d", max_word=3)', "max_word", "folder has no option 'max_word'", "did you mean 'max_words'"),
    ('folder("d", labels="neg")', '"neg"', "labels takes a list of strings", None),
])
def test_check_validates_the_text_source_options_at_their_place(case):
    source, *rest = case
    check_case((TRAIN % source, 5, *rest))


def test_good_text_sources_pass_check():
    import rnndsl

    for source in ('csv("r.csv", text="review", label="sentiment", max_words=50, maxlen=8, padding="post", '
                   'truncating="post", labels=["neg", "pos"], delimiter=";", skip_header=true)',
                   'csv("r.csv", text=0, label=1)', 'folder("data/train", maxlen=20, test_split=0.1)',
                   'csv("r.csv", label_column=0)'):
        assert rnndsl.compile(TRAIN % source).graph.train["data"]["name"] in ("csv", "folder")
