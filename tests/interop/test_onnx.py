"""ONNX export: onnxruntime runs the exported graph and gives rnndsl's outputs within 1e-5
(float32), for every layer kind and option that exports, at batch sizes and sequence
lengths other than any the graph was written with; what does not export is a clear error."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import rnndsl
from rnndsl.cli import main
from rnndsl.errors import RnnError

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package (pip install 'rnndsl[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="checking an exported graph needs onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cells.cell_texts import MGU, ODD, TWO  # noqa: E402   (the cells tests/cells compiles too)

SEQ = "input x: float[?, 3]\n"
TOK = "input x: int[?]\n"
SPECS = {
    # ONNX's own operators
    "lstm": SEQ + "output x | lstm(4, seq) | dense(2)",
    "lstm_options": SEQ + "output x | lstm(4, use_bias=false, go_backwards=true, activation=relu, "
                          "unit_forget_bias=false)",
    "lstm_backwards_seq": SEQ + "output x | lstm(4, seq, go_backwards=true)",
    "gru": SEQ + "output x | gru(4, seq, go_backwards=true)",
    "gru_reset_before": SEQ + "output x | gru(4, seq, reset_after=false) | gru(3, use_bias=false)",
    "simplernn": SEQ + "output x | simplernn(4, seq, activation=relu) | simplernn(3, go_backwards=true)",
    "bilstm_concat": TOK + "output x | embed(9, 3) | bilstm(4, seq) | bigru(3, merge_mode=sum)",
    "bi_modes": SEQ + "h = x | birnn(3, seq, merge_mode=mul) | bilstm(2, seq, merge_mode=ave)\n"
                      "b = h | bidirectional(gru(2, seq), merge_mode=none)\noutput b.forward\noutput b.backward",
    "bi_backward_layer": SEQ + "output x | bidirectional(lstm(3, seq), backward_layer=gru(4, seq, "
                               "go_backwards=true)) | bidirectional(gru(2, go_backwards=true))",
    # a Scan where the operators cannot: other activations, masks
    "scan_activations": SEQ + "output x | lstm(4, seq, recurrent_activation=hard_sigmoid, activation=linear) "
                              "| gru(3, seq, go_backwards=true, recurrent_activation=hard_sigmoid, "
                              "reset_after=false) | simplernn(2, activation=linear)",
    "mask_zero": TOK + "output x | embed(9, 3, mask_zero=true) | lstm(4, seq) | gru(3, seq, go_backwards=true) "
                       "| simplernn(3, seq, activation=hard_sigmoid) | global_avg_pool()",
    "mask_last": TOK + "output x | embed(9, 3, mask_zero=true) | gru(4, seq, reset_after=false, "
                       "zero_output_for_mask=true) | lstm(3, go_backwards=true)",
    "mask_bidirectional": TOK + "output x | embed(9, 3, mask_zero=true) | bilstm(3, seq) | dense(2) "
                                "| bigru(2, merge_mode=ave)",
    "masking": SEQ + "h = x | masking() | dense(3, activation=tanh) | lstm(4, seq, zero_output_for_mask=true)\n"
                     "c = concat(h, h)\noutput c | simplernn(2)",
    # the other layers
    "dense_kinds": SEQ + "h = x | dense(4, activation=relu) | dense(4, activation=sigmoid) "
                         "| dense(3, activation=hard_sigmoid, use_bias=false) | dropout(0.5) | batchnorm()\n"
                         "output h | lstm(3) | batchnorm(center=false, scale=false, epsilon=0.01) "
                         "| dense(2, activation=softmax)",
    "pool_merge": TOK + "e = x | embed(9, 4, mask_zero=true)\na = e | gru(4, seq)\nb = e | dense(4)\n"
                        "s = add(a, b)\np1 = s | global_avg_pool()\np2 = s | global_max_pool()\n"
                        "p3 = e | global_avg_pool()\noutput concat(p1, p2, p3)",
    "repeat": SEQ + "output x | lstm(3) | repeat(4) | gru(2, seq) | global_max_pool()",
    "flatten": "input x: float[5, 3]\noutput x | lstm(3, seq) | flatten() | dense(2)",
    "states": TOK + "input y: float[?, 2]\ninput h0: float[3]\ninput c0: float[3]\n"
                    "enc = x | embed(9, 3) | lstm(3, state, initial_state=[h0, c0])\n"
                    "dec = y | lstm(3, seq, state, initial_state=enc.state)\noutput dec | dense(2)\n"
                    "output h, c = dec.state",
    "bi_states": SEQ + "enc = x | bigru(2, seq, state)\ndec = x | bidirectional(gru(2), initial_state=enc.state)\n"
                       "output dec\noutput hf, hb = enc.state",
    "bilstm_states": SEQ + "enc = x | bilstm(2, state, merge_mode=sum)\n"
                           "dec = x | bilstm(2, seq, initial_state=enc.state)\noutput dec\n"
                           "output hf, cf, hb, cb = enc.state",
    "vector_input": "input v: float[3]\ninput x: float[?, 2]\n"
                    "a = x | lstm(3)\nb = v | dense(3, activation=tanh)\nc = concat(a, b)\noutput c | dense(2)",
    "attention": TOK + "input y: int[?]\nenc = x | embed(9, 4, mask_zero=true) | lstm(4, seq)\n"
                       "dec = y | embed(9, 4, mask_zero=true) | gru(4, seq)\n"
                       "a = attention(dec, enc, use_scale=true)\nb = attention(dec, enc, enc, score_mode=concat, "
                       "use_scale=true, use_causal_mask=true)\nc = additive_attention(dec, enc)\n"
                       "d = additive_attention(dec, enc, use_scale=false, use_causal_mask=true)\n"
                       "output concat(a, b, c, d) | dense(2)",
    "attention_scores": "input q: float[?, 3]\ninput v: float[6, 3]\n"
                        "a = attention(q, v, return_attention_scores=true, use_causal_mask=true)\n"
                        "output a\noutput w = a.scores",
    # custom cells: a Scan over the cell's equations
    "cell_mgu": MGU + SEQ + "output x | rnn(mgu(4), seq, go_backwards=true) | rnn(mgu(3))",
    "cell_odd_masked": ODD + TOK + "h = x | embed(9, 3, mask_zero=true) | rnn(odd(4), seq, state)\n"
                                   "output h | global_avg_pool()\noutput s1, s2 = h.state",
    "cell_two_inputs": TWO + "input a: float[?, 3]\ninput b: float[?, 2]\n"
                             "ma = a | masking()\noutput rnn(two(4), ma, b, seq, zero_output_for_mask=true) | dense(2)",
    "cell_bidirectional": MGU + TOK + "output x | embed(9, 3, mask_zero=true) | bidirectional(rnn(mgu(3), seq)) "
                                     "| bidirectional(rnn(mgu(2)), backward_layer=gru(2, go_backwards=true))",
    "stateful": SEQ + "output x | lstm(3, seq, stateful=true) | gru(2, stateful=true)",
}


def _perturbed(m, seed):
    """Every weight away from its initial value, biases and moving statistics included."""
    rng = np.random.default_rng(seed)
    ws = []
    for name, w in zip(m.weight_names(), m.get_weights()):
        if "variance" in name:
            ws.append(w + rng.random(w.shape).astype(w.dtype))
        else:
            ws.append(w + rng.normal(0, 0.4, w.shape).astype(w.dtype))
    m.set_weights(ws)
    return m


def _inputs(m, batch, steps, rng):
    """Inputs for the model, token ids with zeros (padding) anywhere, not only at the end, and
    float sequences with all-zero steps (padding for masking())."""
    out = {}
    for node in (m.graph.nodes[i] for i in m.graph.inputs):
        t = node.out
        T = t.steps or steps
        if t.is_tokens:
            a = rng.integers(1, 9, (batch, T))
            a[rng.random((batch, T)) < 0.3] = 0
            a[0, :] = 0 if batch > 2 else a[0, :]          # a row that is all padding
            a[-1, -2:] = 0
        elif t.seq:
            a = rng.normal(size=(batch, T, t.features)).astype(np.float32)
            a[rng.random((batch, T)) < 0.3] = 0.0
        else:
            a = rng.normal(size=(batch, t.features)).astype(np.float32)
        out[node.name] = a
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One model and one exported session per spec, made on first use."""
    cache = {}
    folder = tmp_path_factory.mktemp("onnx")

    def get(name):
        if name not in cache:
            m = _perturbed(rnndsl.compile(SPECS[name], seed=1), 2)
            path = folder / f"{name}.onnx"
            m.export(path)
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            cache[name] = m, sess, onnx.load(str(path))
        return cache[name][:2]
    get.proto = lambda name: get(name) and cache[name][2]
    return get


def _check(m, sess, feeds):
    want = m.predict([feeds[n] for n in m.input_names] if len(feeds) > 1 else next(iter(feeds.values())))
    want = want if isinstance(want, list) else [want]
    got = sess.run(m.output_names, feeds)
    assert len(got) == len(want)
    for name, g, w in zip(m.output_names, got, want):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_onnxruntime_computes_what_rnndsl_computes(exported, name):
    m, sess = exported(name)
    rng = np.random.default_rng(3)
    for batch, steps in ((3, 7), (1, 2), (5, 11)):           # dynamic batch and length
        if name == "stateful":
            m.reset_states()
        _check(m, sess, _inputs(m, batch, steps, rng))


def test_dynamic_dims_are_symbolic(exported):
    m, sess = exported("lstm")
    x = sess.get_inputs()[0]
    assert x.shape[0] == "batch" and isinstance(x.shape[1], str) and x.shape[2] == 3
    assert sess.get_outputs()[0].shape[0] == "batch"


def test_uses_onnx_recurrent_operators_and_scan_where_needed(exported):
    for name, want, not_want in (("lstm", "LSTM", "Scan"), ("gru", "GRU", "Scan"), ("simplernn", "RNN", "Scan"),
                                 ("bilstm_concat", "LSTM", "Scan"), ("mask_zero", "Scan", "LSTM")):
        kinds = {n.op_type for n in exported.proto(name).graph.node}
        assert want in kinds and not_want not in kinds, (name, kinds)
    directions = [a.s for n in exported.proto("bilstm_concat").graph.node for a in n.attribute
                  if a.name == "direction"]
    assert directions == [b"bidirectional", b"bidirectional"]


def test_float64_model_exports_float32(tmp_path):
    m = _perturbed(rnndsl.compile(SPECS["gru"], dtype="float64", seed=1), 4)
    m.export(tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 6, 3))
    got = sess.run(None, {"x": x.astype(np.float32)})[0]
    np.testing.assert_allclose(got, m.predict(x), rtol=1e-5, atol=1e-5)


def test_cli_converts_a_checkpoint(tmp_path, capsys):
    m = _perturbed(rnndsl.compile(SPECS["bilstm_concat"], seed=1), 5)
    ckpt, out = tmp_path / "m.npz", tmp_path / "m.onnx"
    m.save(ckpt)
    assert main(["convert", str(ckpt), str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).integers(0, 9, (4, 6))
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], m.predict(x), rtol=1e-5, atol=1e-5)
    assert main(["convert", str(ckpt), str(tmp_path / "m.xyz")]) == 2
    assert "convert writes .rnn, .keras, .onnx files" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "none.npz"), str(out)]) == 2


def test_what_cannot_be_exported_is_a_clear_error(tmp_path, monkeypatch):
    """Every layer kind of the language exports; one without a mapping names itself."""
    from rnndsl.interop import onnx as exporter

    monkeypatch.delitem(exporter.SIMPLE, "repeat")
    m = rnndsl.compile(SPECS["repeat"])
    with pytest.raises(RnnError, match=r"layer 'repeat_vector' \(repeat\) cannot be exported to ONNX"):
        m.export(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_unknown_suffix_and_missing_onnx(tmp_path, monkeypatch):
    m = rnndsl.compile(SPECS["lstm"])
    with pytest.raises(RnnError, match="the suffix picks it: .onnx"):
        m.export(tmp_path / "m.pb")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(RnnError, match=r'pip install "rnndsl\[onnx\]"'):
        m.export(tmp_path / "m.onnx")


def test_a_cell_with_its_own_output_is_refused_by_name(tmp_path):
    m = rnndsl.compile("cell two_out(units) state(h) {\n  h = tanh(x @ W + h @ U)\n  output = h * 2\n}\n"
                       "input x: float[?, 2]\noutput x | rnn(two_out(3))")
    with pytest.raises(RnnError, match="cell 'two_out': a cell with its own output .* cannot be exported"):
        m.export(tmp_path / "m.onnx")
