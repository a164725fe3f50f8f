"""Forward passes of whole models against the NumPy references, float64 and float32."""

import numpy as np
import pytest

import rnndsl
import layer_reference as ref

RNG = np.random.default_rng(0)


def model(text, dtype="float64", seed=1):
    return rnndsl.compile(text, dtype=dtype, seed=seed)


def randomize(m, scale=0.5):
    """Non-default weights (random biases, moving statistics) so every term is exercised."""
    rng = np.random.default_rng(3)
    m.set_weights([rng.normal(0, scale, w.shape) if "variance" not in n else rng.uniform(0.5, 2, w.shape)
                   for n, w in zip(m.weight_names(), m.get_weights())])
    return m.get_weights()


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softmax"])
def test_dense_vector_and_per_step(activation):
    m = model(f'input x: float[?, 5]\noutput x | dense(4, activation="{activation}")')
    W = randomize(m)
    x = RNG.normal(size=(3, 6, 5))
    np.testing.assert_allclose(m.predict(x), ref.dense(x, *W, activation=activation), rtol=1e-10, atol=1e-10)
    v = model(f'input x: float[5]\noutput x | dense(4, activation="{activation}", use_bias=false)')
    Wv = randomize(v)
    xv = RNG.normal(size=(3, 5))
    np.testing.assert_allclose(v.predict(xv), ref.dense(xv, Wv[0], activation=activation), atol=1e-10)


CELL_CASES = [
    ("simplernn", ""), ("simplernn", ", activation=relu"), ("simplernn", ", go_backwards=true"),
    ("lstm", ""), ("lstm", ", go_backwards=true"), ("lstm", ', activation=relu, recurrent_activation="hard_sigmoid"'),
    ("lstm", ", use_bias=false"), ("gru", ""), ("gru", ", reset_after=false"), ("gru", ", go_backwards=true"),
    ("gru", ", activation=linear, recurrent_activation=tanh, reset_after=false"), ("gru", ", use_bias=false"),
]


@pytest.mark.parametrize("kind,opts", CELL_CASES)
@pytest.mark.parametrize("seq", [False, True])
def test_recurrent_layers(kind, opts, seq):
    text = f"input x: float[?, 3]\noutput x | {kind}(4{', seq' if seq else ''}{opts})"
    m = model(text)
    W = randomize(m)
    x = RNG.normal(size=(2, 5, 3))
    o = m.graph.layers[0].opts
    want, _ = ref.recurrent(kind, x, W, 4, go_backwards=o["go_backwards"], return_sequences=seq,
                            activation=o["activation"], recurrent_activation=o.get("recurrent_activation", "sigmoid"),
                            reset_after=o.get("reset_after", True), use_bias=o["use_bias"])
    np.testing.assert_allclose(m.predict(x), want, rtol=1e-10, atol=1e-10)
    m32 = model(text, dtype="float32")
    m32.set_weights(W)
    np.testing.assert_allclose(m32.predict(x.astype(np.float32)), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "simplernn"])
def test_bidirectional(merge_mode, kind):
    short = {"lstm": "bilstm", "gru": "bigru", "simplernn": "birnn"}[kind]
    m = model(f'input x: float[?, 3]\noutput x | {short}(4, seq, merge_mode="{merge_mode}")')
    W = randomize(m)
    x = RNG.normal(size=(2, 5, 3))
    want, _ = ref.bidirectional(kind, x, W, 4, merge_mode, return_sequences=True)
    np.testing.assert_allclose(m.predict(x), want, atol=1e-10)
    m = model(f'input x: float[?, 3]\noutput x | bidirectional({kind}(4), merge_mode={merge_mode})')
    W = randomize(m)
    want, _ = ref.bidirectional(kind, x, W, 4, merge_mode)
    np.testing.assert_allclose(m.predict(x), want, atol=1e-10)


def test_bidirectional_merge_none_two_outputs():
    m = model("input x: float[?, 3]\nb = x | bilstm(4, merge_mode=none, seq)\noutput b.forward\noutput b.backward")
    W = randomize(m)
    x = RNG.normal(size=(2, 5, 3))
    yf, yb = m.predict(x)
    want, _ = ref.bidirectional("lstm", x, W, 4, "concat", return_sequences=True)
    np.testing.assert_allclose(np.concatenate([yf, yb], -1), want, atol=1e-10)


def test_embed_mask_stack():
    m = model("embed(20, 3, mask_zero=true) | lstm(4, seq) | gru(2)")
    W = randomize(m)
    ids = np.array([[3, 5, 7, 0, 0], [1, 2, 3, 4, 5], [9, 0, 0, 0, 0]])
    mask = ids != 0
    x = W[0][ids]
    h1, _ = ref.recurrent("lstm", x, W[1:4], 4, mask=mask, return_sequences=True)
    want, _ = ref.recurrent("gru", h1, W[4:7], 2, mask=mask)
    np.testing.assert_allclose(m.predict(ids), want, atol=1e-10)


def test_zero_output_for_mask():
    m = model("embed(20, 3, mask_zero=true) | simplernn(4, seq, zero_output_for_mask=true)")
    W = randomize(m)
    ids = np.array([[3, 5, 0, 0], [1, 2, 3, 4]])
    got = m.predict(ids)
    assert np.all(got[0, 2:] == 0) and np.all(got[1] != 0)
    want, _ = ref.recurrent("simplernn", W[0][ids], W[1:], 4, mask=ids != 0, return_sequences=True,
                            zero_output_for_mask=True)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_batchnorm_inference_and_training():
    m = model("input x: float[?, 3]\noutput x | batchnorm()")
    W = randomize(m)
    x = RNG.normal(size=(4, 5, 3))
    np.testing.assert_allclose(m.predict(x), ref.batchnorm(x, *W), atol=1e-10)
    ex = m.executor
    tape = ex.forward(ex.prepare_inputs(x), training=True)
    got = tape.outputs[0].data.transpose(1, 0, 2)
    np.testing.assert_allclose(got, ref.batchnorm(x, *W, training=True), atol=1e-10)
    # the moving statistics move only when a train step applies the update
    assert [u[0] is W_ for u, W_ in zip(tape.ctx.updates, ex.params[2:])]
    np.testing.assert_allclose(tape.ctx.updates[0][1], 0.99 * W[2] + 0.01 * x.reshape(-1, 3).mean(0))


def test_repeat_concat_add():
    m = model("input x: float[?, 3]\na = x | lstm(4, seq)\nb = x | gru(4, seq)\n"
              "output concat(a, b) | dense(2)\noutput add(a, b) | simplernn(3) | repeat(2) | dense(1)")
    W = randomize(m)
    x = RNG.normal(size=(2, 5, 3))
    # Keras's order (by depth from the outputs): lstm, gru, simplernn, then the two dense layers
    ya, _ = ref.recurrent("lstm", x, W[0:3], 4, return_sequences=True)
    yb, _ = ref.recurrent("gru", x, W[3:6], 4, return_sequences=True)
    want1 = ref.dense(np.concatenate([ya, yb], -1), W[9], W[10])
    h, _ = ref.recurrent("simplernn", ya + yb, W[6:9], 3)
    want2 = ref.dense(np.repeat(h[:, None], 2, axis=1), W[11], W[12])
    got1, got2 = m.predict(x)
    np.testing.assert_allclose(got1, want1, atol=1e-10)
    np.testing.assert_allclose(got2, want2, atol=1e-10)


def test_encoder_decoder_state_edge():
    m = model("input src: int[?]\ninput tgt: int[?]\nenc = src | embed(10, 3) | lstm(4, state)\n"
              "dec = tgt | embed(12, 3) | lstm(4, seq, initial_state=enc.state)\noutput dec | dense(5)")
    W = randomize(m)
    src = RNG.integers(0, 10, (2, 6))
    tgt = RNG.integers(0, 12, (2, 3))
    # Keras's order: both embeddings, both LSTMs, the dense layer
    _, (h, c) = ref.recurrent("lstm", W[0][src], W[2:5], 4)
    y, _ = ref.recurrent("lstm", W[1][tgt], W[5:8], 4, h0=h, c0=c, return_sequences=True)
    np.testing.assert_allclose(m.predict({"src": src, "tgt": tgt}), ref.dense(y, W[8], W[9]), atol=1e-10)
    np.testing.assert_allclose(m.predict([src, tgt], batch_size=1), ref.dense(y, W[8], W[9]), atol=1e-10)


def test_bidirectional_state_edge():
    m = model("input a: float[?, 3]\ninput b: float[?, 3]\nenc = a | bigru(4, state)\n"
              "output b | bigru(4, initial_state=enc.state)")
    W = randomize(m)
    xa, xb = RNG.normal(size=(2, 5, 3)), RNG.normal(size=(2, 4, 3))
    _, states = ref.bidirectional("gru", xa, W[:6], 4)
    yf, _ = ref.recurrent("gru", xb, W[6:9], 4, h0=states[0])
    yb, _ = ref.recurrent("gru", xb, W[9:12], 4, h0=states[1], go_backwards=True)
    np.testing.assert_allclose(m.predict([xa, xb]), np.concatenate([yf, yb], -1), atol=1e-10)


def test_stateful_halves_equal_whole():
    text = "input x: float[?, 3]\noutput x | lstm(4, seq, stateful=true) | gru(2, seq, stateful=true)"
    m = model(text)
    randomize(m)
    x = RNG.normal(size=(2, 8, 3))
    whole = m.predict_on_batch(x)
    m.reset_states()
    first = m.predict_on_batch(x[:, :5])
    second = m.predict_on_batch(x[:, 5:])
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=1e-12)
    m.reset_states()
    np.testing.assert_allclose(m.predict_on_batch(x[:, :5]), first, atol=1e-12)


def test_stateful_batch_size_change_is_an_error():
    m = model("input x: float[?, 3]\noutput x | simplernn(4, stateful=true)")
    m.predict_on_batch(RNG.normal(size=(2, 3, 3)))
    with pytest.raises(rnndsl.DataError, match="batch size 2.*batch size 3"):
        m.predict_on_batch(RNG.normal(size=(3, 3, 3)))
    m.reset_states()
    m.predict_on_batch(RNG.normal(size=(3, 3, 3)))


def test_reset_states_to_given_state():
    m = model("input x: float[?, 3]\noutput x | gru(4, stateful=true)")
    W = randomize(m)
    h0 = RNG.normal(size=(2, 4))
    m.reset_states([h0])
    x = RNG.normal(size=(2, 3, 3))
    want, _ = ref.recurrent("gru", x, W, 4, h0=h0)
    np.testing.assert_allclose(m.predict_on_batch(x), want, atol=1e-10)


def assert_padded_batch_equals_one_by_one(m):
    """Zero-padded id sequences in one batch give what each gives alone (per-step outputs
    compared on the real steps)."""
    randomize(m)
    seqs = [[4, 5, 6, 7, 8], [9, 10], [11, 12, 13]]
    padded = np.zeros((3, 5), int)
    for i, s in enumerate(seqs):
        padded[i, :len(s)] = s
    out = m.predict(padded)
    for i, s in enumerate(seqs):
        alone = m.predict(np.array([s]))[0]
        np.testing.assert_allclose(out[i, :len(s)] if out.ndim == 3 else out[i], alone, atol=1e-10)


def test_padded_batch_equals_sequences_one_by_one():
    assert_padded_batch_equals_one_by_one(
        model("embed(30, 3, mask_zero=true) | bilstm(4, seq) | gru(3, seq) | dense(2)"))


def test_weights_round_trip_and_seed():
    text = "embed(50, 4) | bigru(3, seq) | lstm(2) | batchnorm() | dense(2)"
    a, b = model(text, seed=5), model(text, seed=5)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(x, y) for x, y in zip(a.get_weights(), model(text, seed=6).get_weights()))
    ids = RNG.integers(0, 50, (2, 4))
    before = a.predict(ids)
    a.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(ids), before)


def test_keras_initialisers():
    m = model("input x: float[?, 8]\noutput x | lstm(16) | dense(4)")
    K, U, b, D, db = m.get_weights()
    assert np.abs(K).max() <= np.sqrt(6 / (8 + 64)) and np.abs(K).max() > 0.5 * np.sqrt(6 / (8 + 64))
    np.testing.assert_allclose(U @ U.T, np.eye(16), atol=1e-10)          # orthogonal rows
    np.testing.assert_array_equal(b, np.r_[np.zeros(16), np.ones(16), np.zeros(32)])
    assert not db.any()
    E = model("embed(100, 8) | lstm(2)").get_weights()[0]
    assert np.abs(E).max() <= 0.05


def test_set_weights_errors_name_layer_and_shapes():
    m = model("input x: float[?, 3]\noutput x | lstm(4) | dense(2)")
    w = m.get_weights()
    w[1] = np.zeros((3, 16))
    with pytest.raises(rnndsl.WeightsError, match=r"'lstm'.*\(4, 16\).*\(3, 16\)"):
        m.set_weights(w)
    with pytest.raises(rnndsl.WeightsError, match="expects 5 arrays"):
        m.set_weights(w[:2])


def test_weight_names_follow_keras():
    m = model("input x: float[?, 3]\noutput x | gru(4) | batchnorm() | dense(2)")
    assert m.weight_names() == ["gru/kernel", "gru/recurrent_kernel", "gru/bias", "batch_normalization/gamma",
                                "batch_normalization/beta", "batch_normalization/moving_mean",
                                "batch_normalization/moving_variance", "dense/kernel", "dense/bias"]


def test_step_by_step_equals_whole_sequence():
    m = model("input x: float[?, 3]\noutput x | lstm(4, seq, stateful=true) | dense(2)")
    randomize(m)
    x = RNG.normal(size=(2, 5, 3))
    whole = m.predict_on_batch(x)
    m.reset_states()
    steps = np.stack([m.step(x[:, t]) for t in range(5)], axis=1)
    np.testing.assert_allclose(steps, whole, atol=1e-12)
    with pytest.raises(rnndsl.DataError, match="stateful"):
        model("input x: float[?, 3]\noutput x | lstm(4)").step(x[:, 0])


@pytest.mark.parametrize("chain", [
    "lstm(4, seq, stateful=true) | gru(3, seq, stateful=true) | dense(2)",
    "simplernn(4, seq, stateful=true, use_bias=false) | gru(3, seq, stateful=true, reset_after=false)",
    'gru(4, seq, stateful=true, activation=relu) | dense(3, activation="softmax")',
])
def test_compiled_step_path_equals_whole_sequence(chain):
    m = model(f"input x: float[?, 3]\noutput x | {chain}", dtype="float32")
    randomize(m)
    assert m._step_plan() is not None
    x = RNG.normal(size=(2, 6, 3)).astype(np.float32)
    whole = m.predict_on_batch(x)
    m.reset_states()
    steps = np.stack([m.step(x[:, t]) for t in range(6)], axis=1)
    np.testing.assert_allclose(steps, whole, rtol=1e-5, atol=1e-5)
    # step() and predict_on_batch() share the carried state
    m.reset_states()
    m.step(x[:, 0])
    np.testing.assert_allclose(m.predict_on_batch(x[:, 1:]), whole[:, 1:], rtol=1e-5, atol=1e-5)


# The recurrent layers get their input projection per step inside the kernel (inputs up to
# PER_STEP_MAX_FEATURES wide) or for all steps at once (wider inputs). In inference a
# last-output-only layer reads a per-step input in place (a strided time-major view of the
# batch-major model input), and runs a wider one CHUNK_ROWS rows (steps x batch) at a time
# (runtime/cpu/recurrent.py). The tests above run per step; here the limits are lowered to force
# the others.
PROJECTION_PATHS = {"per_step": (512, 10**9), "all_steps": (0, 10**9), "all_steps_chunks": (0, 4)}


@pytest.mark.parametrize("path", PROJECTION_PATHS)
@pytest.mark.parametrize("kind,opts", [("simplernn", ", go_backwards=true"), ("lstm", ""),
                                        ("lstm", ", go_backwards=true"), ("gru", ""),
                                        ("gru", ", reset_after=false, go_backwards=true")])
@pytest.mark.parametrize("seq", [False, True])
def test_projection_paths_agree_with_reference(monkeypatch, path, kind, opts, seq):
    import rnndsl.runtime.cpu.recurrent as rec
    monkeypatch.setattr(rec, "PER_STEP_MAX_FEATURES", PROJECTION_PATHS[path][0])
    monkeypatch.setattr(rec, "CHUNK_ROWS", PROJECTION_PATHS[path][1])
    m = model(f"input x: float[?, 3]\noutput x | {kind}(4{', seq' if seq else ''}{opts})")
    W = randomize(m)
    x = RNG.normal(size=(2, 7, 3))          # 2 rows: chunks of 2 steps, the last one short
    o = m.graph.layers[0].opts
    want, _ = ref.recurrent(kind, x, W, 4, go_backwards=o["go_backwards"], return_sequences=seq,
                            reset_after=o.get("reset_after", True))
    np.testing.assert_allclose(m.predict(x), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("path", PROJECTION_PATHS)
def test_projection_paths_with_masks(monkeypatch, path):
    """Padded batches equal the sequences one by one on every projection path."""
    import rnndsl.runtime.cpu.recurrent as rec
    monkeypatch.setattr(rec, "PER_STEP_MAX_FEATURES", PROJECTION_PATHS[path][0])
    monkeypatch.setattr(rec, "CHUNK_ROWS", PROJECTION_PATHS[path][1])
    assert_padded_batch_equals_one_by_one(
        model("embed(30, 3, mask_zero=true) | lstm(4, seq) | gru(3, go_backwards=true) | dense(2)"))


@pytest.mark.parametrize("spec,path", [("lstm(8) | dense(3)", "per_step"), ("lstm(8) | dense(3)", "all_steps"),
                                       ("gru(8, go_backwards=true)", "per_step"), ("bilstm(4)", "per_step"),
                                       ("lstm(8, seq) | simplernn(4)", "per_step")])
def test_inference_memory_does_not_grow_with_length(monkeypatch, spec, path):
    """A last-output-only recurrent model allocates the same at 2,000 and 8,000 steps: the
    input stays batch-major, and the kernels read its steps in place (per_step) or project
    CHUNK_ROWS rows at a time (all_steps: the inputs wider than PER_STEP_MAX_FEATURES)."""
    import tracemalloc
    import rnndsl.runtime.cpu.recurrent as rec
    monkeypatch.setattr(rec, "PER_STEP_MAX_FEATURES", PROJECTION_PATHS[path][0])
    m = model(f"input x: float[?, 5]\noutput x | {spec}", dtype="float32")
    m.predict_on_batch(np.zeros((4, 3, 5), np.float32))

    def peak(T):
        x = RNG.normal(size=(4, T, 5)).astype(np.float32)
        tracemalloc.start()
        m.predict_on_batch(x)
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p

    peak(8000)      # once first: the first long input starts numba's thread pool (~400 KB, once)
    grow = peak(8000) - peak(2000)
    if "seq" in spec:      # a sequence passed to the next layer is kept whole, and grows
        assert grow > 6000 * 4 * 8 * 4
    else:
        assert grow < 64 * 1024, grow    # a time-major copy would add 480 KiB
