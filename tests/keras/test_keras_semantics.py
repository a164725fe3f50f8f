"""rnndsl against numbers Keras 3.15 gave on the same weights (tests/keras/make_reference.py
prints them; Keras is not needed to run these tests)."""

import numpy as np
import pytest

import rnndsl
from rnndsl.errors import SpecError

# Keras 3.15 (torch backend, float32), printed by make_reference.py
BI_GRU_LAST = [[-0.2263691, -0.0742354, 0.1449112, -0.1455590, -0.5304146, 0.1410466],
               [-0.1172898, 0.0093930, 0.1347492, -0.1947019, -0.1638518, 0.3566979],
               [-0.3145325, -0.2455658, -0.0280750, -0.1454764, -0.4854572, 0.4255518]]
MERGED = {"concat": [[-0.1026746, -0.2698844], [-0.0404589, -0.0876659], [-0.0219981, -0.2294951]],
          "add": [[0.0675935, -0.2335404], [0.1366526, -0.1536013], [0.0477392, -0.2161398]]}
STATEFUL_EDGE = [[[-0.2534359, 0.5006021], [-0.2264602, 0.4540091]],
                 [[-0.2509956, 0.4901173], [-0.2299773, 0.4651363]]]     # both calls
ENCDEC = [[0.1280430, 0.0284590], [0.2032151, 0.1114736]]
FANIN = [[[1.3080477, 0.0058168], [0.5728313, -0.7560724], [0.7066000, -0.8219966]],
         [[1.3446684, -0.1877476], [0.6702402, -0.9839401], [0.6208633, -1.1504772]]]
KERAS_ATOL = 2e-6          # Keras ran in float32 and printed 7 decimals


def weights_for(shapes, seed=0):
    """The weights make_reference.py gives every Keras model, in get_weights() order."""
    rng = np.random.default_rng(seed)
    return [np.round(rng.uniform(-0.6, 0.6, s), 3) for s in shapes]


def loaded(text):
    m = rnndsl.compile(text, dtype="float64")
    m.set_weights(weights_for([w.shape for w in m.get_weights()]))
    return m


def test_bidirectional_halves_zero_output_follow_return_sequences():
    """Keras sets both halves' zero_output_for_mask to return_sequences: without seq a
    padded row's forward half is its last valid output, not zeros."""
    m = loaded("input x: int[?]\n"
               "output x | embed(5, 2, mask_zero=true) | bidirectional(gru(3, zero_output_for_mask=true))")
    got = m.predict(np.array([[1, 2, 3, 0], [2, 0, 0, 0], [3, 1, 0, 0]]))
    np.testing.assert_allclose(got, BI_GRU_LAST, atol=KERAS_ATOL)


@pytest.mark.parametrize("merge", ["concat", "add"])
def test_merged_masks_are_ored(merge):
    """Keras 3 keeps a step that any merged input keeps."""
    m = loaded("input a: int[?]\ninput b: int[?]\n"
               "ea = a | embed(4, 2, mask_zero=true)\neb = b | embed(4, 2, mask_zero=true)\n"
               f"output {merge}(ea, eb) | lstm(2)")
    got = m.predict([np.array([[1, 2, 0, 0], [0, 3, 1, 0], [2, 0, 0, 1]]),
                     np.array([[1, 0, 3, 0], [2, 0, 0, 0], [0, 0, 2, 1]])])
    np.testing.assert_allclose(got, MERGED[merge], atol=KERAS_ATOL)


def test_merge_with_an_unmasked_input_passes_no_mask():
    m = rnndsl.compile("input a: int[?]\ninput b: float[?, 2]\nea = a | embed(4, 2, mask_zero=true)\n"
                       "output concat(ea, b) | lstm(2, seq)", dtype="float64")
    node = [n for n in m.graph.nodes if n.kind == "concat"][0]
    assert not node.out.masked


def test_stateful_layer_with_initial_state_starts_from_it_every_call():
    m = loaded("input src: int[?]\ninput tgt: int[?]\n"
               "enc = src | embed(4, 2) | lstm(3, state)\n"
               "dec = tgt | embed(4, 2) | lstm(3, seq, stateful=true, initial_state=enc.state)\n"
               "output dec | dense(2)")
    x = [np.array([[1, 2, 3], [3, 1, 2]]), np.array([[2, 1], [1, 3]])]
    np.testing.assert_allclose(m.predict(x), STATEFUL_EDGE, atol=KERAS_ATOL)
    np.testing.assert_allclose(m.predict(x), STATEFUL_EDGE, atol=KERAS_ATOL)


def test_encoder_decoder_weights_in_keras_order():
    """The Keras guide's encoder-decoder: Keras lists both embeddings before the two LSTMs;
    a Keras user's set_weights(keras_model.get_weights()) must fit."""
    m = loaded("input src: int[?]\ninput tgt: int[?]\n"
               "enc = src | embed(6, 3) | lstm(4, state)\n"
               "dec = tgt | embed(7, 3) | lstm(4, initial_state=enc.state)\n"
               "output dec | dense(2)")
    assert [n.split("/")[-1] for n in m.weight_names()] == [
        "embeddings", "embeddings", "kernel", "recurrent_kernel", "bias", "kernel", "recurrent_kernel", "bias",
        "kernel", "bias"]
    assert [w.shape for w in m.get_weights()][:2] == [(6, 3), (7, 3)]
    got = m.predict([np.array([[1, 5, 2], [3, 0, 4]]), np.array([[6, 1], [2, 2]])])
    np.testing.assert_allclose(got, ENCDEC, atol=KERAS_ATOL)


def test_fan_in_weights_in_keras_order():
    """Keras orders layers by depth from the output: gru, its dense, then simplernn."""
    m = loaded("input a: float[?, 2]\ninput b: float[?, 2]\n"
               "fa = a | gru(3, seq) | dense(3)\nfb = b | simplernn(3, seq)\n"
               "output add(fa, fb) | dense(2)")
    assert m.weight_names() == ["gru/kernel", "gru/recurrent_kernel", "gru/bias", "fa/kernel", "fa/bias",
                                "fb/kernel", "fb/recurrent_kernel", "fb/bias", "dense/kernel", "dense/bias"]
    xa = np.round(np.linspace(-1, 1, 12).reshape(2, 3, 2), 3)
    xb = np.round(np.cos(np.arange(12)).reshape(2, 3, 2), 3)
    np.testing.assert_allclose(m.predict([xa, xb]), FANIN, atol=KERAS_ATOL)
    # the summary lists the layers as Keras's does: a, gru_1, b, dense_2, simple_rnn_1, add, dense_3
    rows = [line.split()[0] for line in m.summary_text().splitlines()[4:-4]]
    assert rows == ["a", "gru", "b", "fa", "fb", "add", "dense"]


def test_unquoted_uniform_initializer_parses():
    m = rnndsl.compile("cell c(units) init(W = uniform_0.05) {\n  h = tanh(x @ W + h @ U + b)\n}\n"
                       "input x: float[?, 30]\noutput x | rnn(c(40))", seed=3)
    W = m.get_weights()[0]
    assert 0.04 < np.abs(W).max() <= 0.05           # glorot_uniform would reach ~0.29 here


def test_state_names_that_differ_get_a_hint_about_names():
    text = ("cell c(units) state(a, s) {\n  a = tanh(x @ W + a @ U + s)\n  s = a * s\n}\n"
            "input x: float[?, 3]\ninput y: float[?, 3]\nenc = x | lstm(4, state)\n"
            "output y | rnn(c(4), initial_state=enc.state)")
    with pytest.raises(SpecError) as e:
        rnndsl.compile(text)
    msg = str(e.value)
    assert "named differently" in msg and "state(h, c)" in msg and "units" not in msg.split("hint:")[1]
