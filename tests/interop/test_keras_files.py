"""Keras 3 files in and out (rnndsl/interop/keras.py), checked against Keras itself.

Keras makes the reference files and reads rnndsl's, on its numpy backend (KERAS_BACKEND is
set before the first import); without Keras and h5py those tests skip. Tiny models: each
test compiles a few small kernels once.
"""

import os
import re
import sys

import numpy as np
import pytest

import rnndsl
from rnndsl.cli import main
from rnndsl.errors import RnnError

TOL = 1e-5


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("h5py")
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "numpy"
    return pytest.importorskip("keras")


def _seeded(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.uniform(-0.6, 0.6, w.shape)
                       for w in model.weights])
    return model


def _close(a, b):
    a = a if isinstance(a, list) else [a]
    b = b if isinstance(b, list) else [b]
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.asarray(u, np.float64), np.asarray(v, np.float64), atol=TOL, rtol=0)


IDS = np.array([[1, 2, 3, 0], [2, 5, 0, 0], [6, 1, 4, 2]])


def _masked_functional(keras):
    L = keras.layers
    x = keras.Input((None,), dtype="int32", name="ids")
    e = L.Embedding(7, 3, mask_zero=True)(x)
    b = L.Bidirectional(L.GRU(2, return_sequences=True, reset_after=False))(e)
    h = L.LSTM(3, return_sequences=True)(b)
    d = L.TimeDistributed(L.Dense(2))(h)
    n = L.BatchNormalization()(d)
    y = L.SimpleRNN(2, activation="relu")(n)
    return _seeded(keras.Model(x, y))


def test_functional_masked_stack_loads_and_predicts_as_keras(keras, tmp_path):
    m = _masked_functional(keras)
    path = tmp_path / "m.keras"
    m.save(path)
    r = rnndsl.load_model(path)
    assert r.count_params() == m.count_params()
    assert [n.name for n in r.graph.layers] == [layer.name for layer in m.layers[1:]]
    assert [n.kind for n in r.graph.layers] == ["embed", "bidirectional", "lstm", "dense", "batchnorm", "simplernn"]
    _close(m.predict(IDS, verbose=0), r.predict(IDS))
    # the same weights, array for array, in Keras's order
    for a, b in zip(m.get_weights(), r.get_weights()):
        np.testing.assert_array_equal(a, b)
    # a Functional model's model.weights.h5 alone, into the spec compiled again
    m.save_weights(tmp_path / "m.weights.h5")
    again = rnndsl.compile(r.source, seed=9)
    again.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(m.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RnnError, match="weights only.*load_weights"):
        rnndsl.load_model(tmp_path / "m.weights.h5")


def test_sequential_masking_gru_and_weights_file(keras, tmp_path):
    L = keras.layers
    m = _seeded(keras.Sequential([keras.Input((5, 3)), L.Masking(0.0), L.GRU(2, return_sequences=True),
                                  L.Dropout(0.2), L.Dense(2, activation="tanh")]), seed=1)
    x = np.random.default_rng(2).normal(size=(3, 5, 3))
    x[0, 3:] = 0.0
    x[1, 1] = 0.0
    m.save(tmp_path / "s.keras")
    r = rnndsl.load_model(tmp_path / "s.keras", dtype="float64")
    _close(m.predict(x, verbose=0), r.predict(x))
    # model.weights.h5 alone into a compiled spec
    m.save_weights(tmp_path / "s.weights.h5")
    spec = rnndsl.compile("input x: float[5, 3]\nx | masking() | gru(2, seq) | dropout(0.2) | dense(2, activation=tanh)")
    spec.load_weights(tmp_path / "s.weights.h5")
    _close(m.predict(x, verbose=0), spec.predict(x))


def test_encoder_decoder_with_initial_state_attention_and_state_outputs(keras, tmp_path):
    L = keras.layers
    src, tgt = keras.Input((None, 3), name="src"), keras.Input((None, 3), name="tgt")
    enc, h, c = L.LSTM(2, return_sequences=True, return_state=True)(src)
    dec = L.LSTM(2, return_sequences=True)(tgt, initial_state=[h, c])
    ctx = L.Attention(use_scale=True)([dec, enc])
    y = L.Dense(2)(L.Add()([L.Concatenate()([dec, ctx]), L.Dense(4)(dec)]))
    m = _seeded(keras.Model([src, tgt], [y, h, c]), seed=3)
    rng = np.random.default_rng(4)
    xs = [rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 3, 3))]
    m.save(tmp_path / "f.keras")
    r = rnndsl.load_model(tmp_path / "f.keras")
    assert "initial_state=lstm" in r.source
    _close(m.predict(xs, verbose=0), r.predict(xs))


SPEC_OUT = """
input ids: int[?]
input v: float[3]
e = ids | embed(9, 4, mask_zero=true) | bigru(3, seq, reset_after=true) | lstm(2, seq, state)
g = e | lstm(2, initial_state=e.state) | dense(4, activation=relu)
r = v | repeat(2) | gru(3, seq, reset_after=false) | simplernn(3, seq) | global_avg_pool()
w = v | dense(1)
rw = concat(r, w)
output add(g, rw) | batchnorm() | dense(3, activation=softmax)
output h, c = e.state
"""


def test_rnndsl_model_saved_as_keras_loads_in_keras(keras, tmp_path):
    m = rnndsl.compile(SPEC_OUT, seed=5)
    w = m.get_weights()
    rng = np.random.default_rng(6)
    m.set_weights([rng.uniform(0.5, 1.5, a.shape) if n.endswith("variance") else rng.uniform(-0.6, 0.6, a.shape)
                   for n, a in zip(m.weight_names(), w)])
    xs = [np.array([[1, 2, 3, 0], [4, 0, 0, 0]]), rng.normal(size=(2, 3))]
    m.save(tmp_path / "o.keras")
    k = keras.saving.load_model(tmp_path / "o.keras")
    assert k.count_params() == m.count_params()
    _close(m.predict(xs), k.predict(xs, verbose=0))
    # and back: the same spec's outputs from the file rnndsl wrote
    _close(m.predict(xs), rnndsl.load_model(tmp_path / "o.keras").predict(xs))


def test_unsupported_layers_and_options_are_named(keras, tmp_path):
    L = keras.layers
    x = keras.Input((5, 3))
    m = keras.Model(x, L.Conv1D(2, 3, name="conv_a")(x))
    m.save(tmp_path / "c.keras")
    with pytest.raises(RnnError, match=r"layer 'conv_a' \(Conv1D\): rnndsl has no such layer"):
        rnndsl.load_model(tmp_path / "c.keras")
    m = keras.Model(x, L.LSTM(2, kernel_regularizer="l2", name="lstm_r")(x))
    m.save(tmp_path / "r.keras")
    with pytest.raises(RnnError, match=r"layer 'lstm_r' \(LSTM\): kernel_regularizer is set"):
        rnndsl.load_model(tmp_path / "r.keras")
    m = keras.Model(x, L.GRU(2, use_bias=True, activation="selu", name="gru_s")(x))
    m.save(tmp_path / "g.keras")
    with pytest.raises(RnnError, match=r"gru_s"):
        rnndsl.load_model(tmp_path / "g.keras")


def test_convert_cli(keras, tmp_path, capsys):
    m = _masked_functional(keras)
    m.save(tmp_path / "m.keras")
    assert main(["convert", str(tmp_path / "m.keras"), str(tmp_path / "m.rnn")]) == 0
    text = (tmp_path / "m.rnn").read_text()
    assert re.match(r"input ids: int\[\?\]\nembedding\w* = ids \| embed\(7, 3, mask_zero=true\)\n", text)
    spec = rnndsl.load(tmp_path / "m.rnn")
    spec.set_weights(rnndsl.load_model(tmp_path / "m.npz").get_weights())
    _close(m.predict(IDS, verbose=0), spec.predict(IDS))
    assert main(["convert", str(tmp_path / "m.rnn"), str(tmp_path / "back.keras")]) == 0
    assert keras.saving.load_model(tmp_path / "back.keras").count_params() == m.count_params()
    assert main(["convert", str(tmp_path / "m.rnn"), str(tmp_path / "m.xyz")]) == 2
    assert "convert writes .rnn, .keras, .onnx files, not 'm.xyz'" in capsys.readouterr().err


def test_saved_model_is_not_a_spec(tmp_path):
    p = tmp_path / "m.keras"
    p.write_bytes(b"PK\x03\x04" + bytes(range(256)))
    with pytest.raises(RnnError, match="not a text spec.*rnndsl.load_model"):
        rnndsl.load(p)


def test_missing_h5py_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(RnnError, match=r'pip install "rnndsl\[keras\]"'):
        rnndsl.compile("input x: float[?, 2]\nx | dense(1)").save(tmp_path / "m.keras")


def test_bidirectional_variants_masking_and_attention_scores(keras, tmp_path):
    L = keras.layers
    x = keras.Input((4, 3), name="x")       # the scores need the value's number of steps
    m = L.Masking(0.0)(x)
    f, b = L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode=None)(m)
    s = L.Bidirectional(L.LSTM(2, return_sequences=True),
                        backward_layer=L.GRU(2, return_sequences=True, go_backwards=True, reset_after=False))(f)
    ctx, scores = L.AdditiveAttention()([b, f], return_attention_scores=True)
    y = L.Dense(3)(L.Concatenate()([s, ctx]))
    k = _seeded(keras.Model(x, [y, scores]), seed=7)
    xs = np.random.default_rng(8).normal(size=(2, 4, 3))
    xs[1, 2:] = 0.0
    k.save(tmp_path / "b.keras")
    r = rnndsl.load_model(tmp_path / "b.keras")
    assert "backward_layer=gru(2" in r.source and 'merge_mode="none"' in r.source
    _close(k.predict(xs, verbose=0), r.predict(xs))
    r.save(tmp_path / "b2.keras")
    _close(k.predict(xs, verbose=0), keras.saving.load_model(tmp_path / "b2.keras").predict(xs, verbose=0))


def test_keras_ignoring_a_mask_under_initial_state_is_refused(keras, tmp_path):
    # Keras gives a layer its input's mask only when it is called on one tensor
    L = keras.layers
    ids, h0 = keras.Input((None,), dtype="int32"), keras.Input((2,))
    y = L.GRU(2, name="dec")(L.Embedding(5, 2, mask_zero=True)(ids), initial_state=[h0])
    keras.Model([ids, h0], y).save(tmp_path / "d.keras")
    with pytest.raises(RnnError, match=r"layer 'dec' is called with initial_state on a masked input and no mask="):
        rnndsl.load_model(tmp_path / "d.keras")


def test_damaged_keras_files_are_rnndsl_errors(tmp_path, capsys):
    """A .keras file whose members are damaged or of the wrong kind: an rnndsl error (exit 1
    from convert), never an internal one."""
    import zipfile

    pytest.importorskip("h5py")
    good = tmp_path / "good.keras"
    rnndsl.compile("input x: float[?, 2]\noutput x | lstm(3) | dense(2)").save(good)
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}

    def write(name, replace=None, stored=False):
        p = tmp_path / name
        with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as z:
            for n, data in members.items():
                z.writestr(n, (replace or {}).get(n, data))
        return p

    cases = {"null config": write("null.keras", {"config.json": b"null"}),
             "list config": write("list.keras", {"config.json": b"[1, 2]"}),
             "deep config": write("deep.keras", {"config.json": b"[" * 100000 + b"]" * 100000}),
             "garbage weights": write("garbage.keras", {"model.weights.h5": b"not hdf5" * 10}),
             "empty weights": write("empty.keras", {"model.weights.h5": b""})}
    crc = write("crc.keras", stored=True)
    raw = bytearray(crc.read_bytes())
    at = raw.find(b'"class_name"')
    raw[at + 2] ^= 0x20                            # the stored config's bytes no longer match its CRC
    crc.write_bytes(bytes(raw))
    cases["bad CRC"] = crc
    ver = bytearray(good.read_bytes())
    ver[ver.index(b"PK\x01\x02") + 6] = 0xFF        # "version needed": zipfile raises NotImplementedError
    cases["zip version"] = tmp_path / "ver.keras"
    cases["zip version"].write_bytes(bytes(ver))
    for what, p in cases.items():
        with pytest.raises(RnnError):
            rnndsl.load_model(p)
        assert main(["convert", str(p), str(tmp_path / "out.rnn")]) == 1, what
        err = capsys.readouterr().err
        assert "internal error" not in err and str(p) in err, (what, err)
