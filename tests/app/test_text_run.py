"""Text in, text out (issue 19): a CSV of sentences trained with `run`, its checkpoint
keeping the tokenizer settings, vocabulary and label names (JSON, no pickle), then
`run CKPT --text` / `--input lines.txt` / `--json` and Model.predict on raw text; npz
arrays named after a model's inputs and outputs trained from the CLI (point 3)."""

import io
import json
import zipfile

import numpy as np
import pytest

import rnndsl
from rnndsl.app.runner import train_spec
from rnndsl.cli import main
from rnndsl.data import TextEncoder, pad_sequences, tokenize
from rnndsl.errors import CheckpointError, DataError
from rnndsl.train.checkpoint import META_KEY, load_checkpoint, save_checkpoint

GOOD = "great superb lovely fun".split()
BAD = "dull awful boring weak".split()

SPEC = """# reviews
input review: int[?]
output review | embed(30, 8, mask_zero=true) | lstm(8) | dense(2, activation="softmax")
train {
  data = %s
  loss = "sparse_categorical_crossentropy"
  optimizer = adam(learning_rate=0.05)
  metrics = ["accuracy"]
  batch_size = 16
  epochs = 8
  seed = 0
}
"""


def _reviews(n=64, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        good = i % 2 == 0
        a, b = rng.choice(GOOD if good else BAD, 2)
        rows.append((f"The film was {a}, really {b}", "pos" if good else "neg"))
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A sentiment model trained by `run` on a CSV of sentences (named columns, quoted fields)."""
    d = tmp_path_factory.mktemp("text")
    lines = ["id,review,sentiment"] + [f'{i},"{t}",{s}' for i, (t, s) in enumerate(_reviews())]
    (d / "reviews.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = d / "reviews.rnn"
    spec.write_text(SPEC % 'csv("reviews.csv", text="review", label="sentiment", maxlen=6, padding="post")')
    ckpt = d / "reviews.ckpt.npz"
    out = io.StringIO()
    result = train_spec(spec, quiet=True, out=ckpt, stream=out)
    return d, ckpt, result


def test_the_checkpoint_keeps_the_text_settings_as_json(trained):
    d, ckpt, result = trained
    assert result["test_accuracy"] > 0.9
    with zipfile.ZipFile(ckpt) as z:                       # still named .npy members only, no pickle
        assert all(n.endswith(".npy") for n in z.namelist())
    arrays, meta = load_checkpoint(ckpt)
    text = meta["text"]
    assert text["tokenizer"] == "words" and text["lowercase"] is True
    assert (text["maxlen"], text["padding"], text["truncating"]) == (6, "post", "pre")
    assert text["labels"] == ["neg", "pos"] and text["input"] == "review"
    assert text["vocabulary"][:2] == ["<pad>", "<oov>"] and set(GOOD + BAD) <= set(text["vocabulary"])


def test_predict_on_raw_text_tokenizes_as_training_did(trained):
    _, ckpt, _ = trained
    m = rnndsl.load_model(ckpt)
    texts = ["What a GREAT, lovely film!", "boring", "", "zzz qqq " * 10]
    vocab = m.text_encoder.vocab
    ids = pad_sequences([vocab.encode(tokenize(t)) for t in texts], maxlen=6, padding="post")
    assert ids[3].tolist() == [1] * 6                      # OOV words, cut to maxlen
    np.testing.assert_array_equal(m.predict(texts), m.predict(ids))
    np.testing.assert_array_equal(m.predict(np.array(texts)), m.predict(ids))
    np.testing.assert_array_equal(m.predict_on_batch({"review": texts[:2]}), m.predict(ids[:2]))
    p = m.predict(texts[:2])
    assert p[0].argmax() == 1 and p[1].argmax() == 0        # pos, neg
    with pytest.raises(DataError, match="give a list of texts, not one string"):
        m.predict("one text")


def test_run_text_prints_label_and_probability(trained, tmp_path, capsys):
    _, ckpt, _ = trained
    assert main(["run", str(ckpt), "--text", "a superb film", "--text", "so dull and weak"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out] == ["pos", "neg"]
    assert all(0.5 < float(line.split("\t")[1]) <= 1 for line in out) and out[0].endswith("\ta superb film")
    lines = tmp_path / "s.txt"
    lines.write_text("lovely fun\n\n   \nAwful, boring\nunknown words only\n", encoding="utf-8")
    assert main(["run", str(ckpt), "--input", str(lines), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["line"] for r in doc] == [1, 4, 5]            # blank lines skipped, as the data sources skip them
    assert [r["label"] for r in doc[:2]] == ["pos", "neg"]
    assert abs(sum(doc[0]["probabilities"].values()) - 1) < 1e-6
    assert doc[0]["probability"] == max(doc[0]["probabilities"].values())
    preds = tmp_path / "p.npy"
    assert main(["run", str(ckpt), "--input", str(lines), "--output", str(preds)]) == 0
    assert np.load(preds).shape == (3, 2)


def test_run_text_errors(trained, tmp_path, capsys):
    d, ckpt, _ = trained
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nna\xefve\n")
    assert main(["run", str(ckpt), "--input", str(bad)]) == 1
    assert f"{bad}:2:3: not UTF-8 text" in capsys.readouterr().err
    assert main(["run", str(ckpt), "--input", str(bad), "--text", "x"]) == 2
    assert main(["run", str(d / "reviews.rnn"), "--text", "x"]) == 2
    assert "go with a checkpoint" in capsys.readouterr().err


def test_old_checkpoints_load_and_say_they_carry_no_vocabulary(trained, tmp_path, capsys):
    _, ckpt, _ = trained
    arrays, meta = load_checkpoint(ckpt)
    del meta["text"]                                         # as checkpoints were written before issue 19
    old = save_checkpoint(tmp_path / "old.npz", arrays, meta)
    m = rnndsl.load_model(old)
    assert m.text_encoder is None
    ids = rnndsl.load_model(ckpt).text_encoder.encode(["great"])
    np.testing.assert_array_equal(m.predict(ids), rnndsl.load_model(ckpt).predict(["great"]))
    with pytest.raises(DataError, match="carries no vocabulary"):
        m.predict(["great"])
    assert main(["run", str(old), "--text", "great"]) == 1
    assert "carries no vocabulary" in capsys.readouterr().err
    m.save(tmp_path / "again.npz")
    assert "text" not in load_checkpoint(tmp_path / "again.npz")[1]


@pytest.mark.parametrize("change, message", [
    (lambda t: t.update(tokenizer="<pickle>"), "text settings are not valid: the text settings name tokenizer"),
    (lambda t: t.update(vocabulary=[1, 2]), "vocabulary must be a list of strings"),
    (lambda t: t.update(input="nope"), "feed input 'nope', which its spec does not have"),
])
def test_hostile_text_settings_are_checkpoint_errors(trained, tmp_path, change, message):
    _, ckpt, _ = trained
    arrays, meta = load_checkpoint(ckpt)
    change(meta["text"])
    with pytest.raises(CheckpointError, match=message):
        rnndsl.load_model(save_checkpoint(tmp_path / "h.npz", arrays, meta))
    assert META_KEY not in arrays


def test_folder_and_tsv_sources_train_and_fix_maxlen_from_the_input(tmp_path):
    root = tmp_path / "train"
    for i, (t, s) in enumerate(_reviews(24, seed=1)):
        (root / s).mkdir(parents=True, exist_ok=True)
        (root / s / f"{i:03d}.txt").write_text(t, encoding="utf-8")
    spec = tmp_path / "f.rnn"
    spec.write_text((SPEC % 'folder("train", test_split=0.25)').replace("int[?]", "int[5]").replace(
        "epochs = 8", "epochs = 1"))
    r = train_spec(spec, quiet=True, out=tmp_path / "f.npz", stream=io.StringIO())
    m = rnndsl.load_model(r["checkpoint"])
    assert m.text_encoder.labels == ["neg", "pos"] and m.text_encoder.maxlen == 5      # the input's steps
    (tmp_path / "t.tsv").write_text("".join(f"{s}\t{t}\n" for t, s in _reviews(24)))
    spec.write_text((SPEC % 'text("t.tsv", test_split=0.25)').replace("epochs = 8", "epochs = 1"))
    r = train_spec(spec, quiet=True, out=tmp_path / "t.npz", stream=io.StringIO())
    enc = rnndsl.load_model(r["checkpoint"]).text_encoder
    assert enc.maxlen == 6 and enc.padding == "pre"        # the longest line: "the film was x, really y"


def test_text_into_a_one_hot_input():
    m = rnndsl.compile("input x: float[3, 6]\noutput x | lstm(4) | dense(2)", seed=0)
    m.text_encoder = TextEncoder(rnndsl.data.Vocabulary(["a", "b", "c"]), 3)
    ids = m.text_encoder.encode(["a b", "c zz"])
    np.testing.assert_allclose(m.predict(["a b", "c zz"]), m.predict(np.eye(6, dtype=np.float32)[ids]))
    small = rnndsl.compile("input x: float[3, 2]\noutput x | lstm(4) | dense(2)", seed=0)
    small.text_encoder = m.text_encoder
    with pytest.raises(DataError, match="takes 2 features, fewer than the vocabulary's 5 words"):
        small.predict(["a"])


SEQ2SEQ = """# copy through an encoder-decoder
input src: int[4]
input tgt: int[4]
enc = src | embed(6, 8) | lstm(8, state)
dec = tgt | embed(7, 8) | lstm(8, seq, initial_state=enc.state)
output out = dec | dense(6)
train {
  data = npz("pairs.npz", test_split=0.25)
  loss = "sparse_categorical_crossentropy"
  metrics = ["accuracy"]
  epochs = 2
}
"""


def test_npz_named_after_inputs_and_outputs_trains_an_encoder_decoder_from_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    src = rng.integers(1, 6, (40, 4))
    tgt = np.concatenate([np.full((40, 1), 6), src[:, :-1]], axis=1)
    np.savez(tmp_path / "pairs.npz", src=src, tgt=tgt, out=src)
    spec = tmp_path / "s.rnn"
    spec.write_text(SEQ2SEQ)
    ckpt = tmp_path / "s.npz"
    assert main(["run", str(spec), "--quiet", "--out", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "test_accuracy:" in out and "per_step_accuracy:" in out
    assert main(["run", str(ckpt), "--input", str(tmp_path / "pairs.npz"), "--json"]) == 0
    assert np.asarray(json.loads(capsys.readouterr().out)["out"]).shape == (40, 4, 6)
    np.savez(tmp_path / "pairs.npz", src=src, out=src)
    assert main(["run", str(spec), "--quiet", "--out", str(ckpt)]) == 1
    assert "has arrays for the input(s) src but not for tgt" in capsys.readouterr().err


def test_npz_with_an_array_per_output_trains_several_outputs(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4, 2)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, total=x.sum(axis=(1, 2))[:, None], last=x[:, -1, :])
    spec = tmp_path / "m.rnn"
    spec.write_text('# two outputs\ninput x: float[4, 2]\nh = x | lstm(8)\noutput total = h | dense(1)\n'
                    'output last = h | dense(2)\ntrain {\n  data = npz("d.npz")\n  loss = "mse"\n  epochs = 2\n}\n')
    r = train_spec(spec, quiet=True, out=tmp_path / "m.npz", stream=io.StringIO())
    # the held-out rows (test_split 0.2 of a permutation by split_seed 0), each array to its output
    te = np.random.default_rng([0, 3]).permutation(30)[24:]
    m = rnndsl.load_model(tmp_path / "m.npz")
    pred_total, pred_last = m.predict(x[te])
    want = np.mean((pred_total - x[te].sum(axis=(1, 2))[:, None]) ** 2) + np.mean((pred_last - x[te, -1]) ** 2)
    assert r["test_loss"] == pytest.approx(want, rel=1e-5)


def test_examples_copies_the_data_its_spec_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["examples", "reviews"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "data" / "reviews.csv").is_file() and (tmp_path / "reviews.rnn").is_file()
    (tmp_path / "reviews.rnn").unlink()
    (tmp_path / "data" / "reviews.csv").write_text("mine")
    assert main(["examples", "reviews"]) == 2                 # a data file there already is never overwritten
    assert (tmp_path / "data" / "reviews.csv").read_text() == "mine"
    assert "exists already" in capsys.readouterr().err


def test_a_text_file_for_a_model_without_vocabulary_says_why(trained, tmp_path, capsys):
    _, ckpt, _ = trained
    arrays, meta = load_checkpoint(ckpt)
    del meta["text"]
    old = save_checkpoint(tmp_path / "old.npz", arrays, meta)
    lines = tmp_path / "s.txt"
    lines.write_text("a superb film\n")
    assert main(["run", str(old), "--input", str(lines)]) == 1
    err = capsys.readouterr().err
    assert "is not a NumPy .npy/.npz file" in err and "carries no vocabulary to read it as text" in err


def test_edited_text_settings_in_a_checkpoint_are_refused(trained, tmp_path):
    """A vocabulary whose padding or OOV entry is a word, or with an entry the tokenizer never
    gives, and more labels than the output has classes: each is a CheckpointError at load."""
    _, ckpt, _ = trained
    arrays, meta = load_checkpoint(ckpt)
    for edit, message in ((lambda t: t.update(vocabulary=["good", "bad"] + t["vocabulary"][2:]), "starts with 'good'"),
                          (lambda t: t.update(vocabulary=t["vocabulary"] + ["GOOD"]), "holds 'GOOD'"),
                          (lambda t: t.update(labels=t["labels"] + ["x", "y"]), "more than the")):
        m = json.loads(json.dumps(meta))
        edit(m["text"])
        bad = tmp_path / "edited.ckpt.npz"
        save_checkpoint(bad, arrays, m)
        with pytest.raises(CheckpointError, match=message):
            rnndsl.load_model(bad)
