"""attention(query, value[, key]) and additive_attention (issue 18, point 5): Keras's Attention
(dot or concat scores, use_scale) and AdditiveAttention (Bahdanau), their masks, causal mask,
dropout and scores output; checked against Keras 3 on the same weights, by finite differences,
in both dtypes, and (tests/cuda_engine) on the CUDA engine."""

import numpy as np
import pytest

import rnndsl
from gradcheck import check
from spec_helpers import check_case

# Keras 3.15.1 (torch backend, floatx float64; its Attention gives the context in float32,
# hence atol 2e-7), predict() rounded to 9 decimals:
# A: Masking()(q), Masking()(v) -> Attention()(return_attention_scores=True); sample 2's value all padding
# B: Attention(use_scale=True, score_mode="concat")([q, v, k], use_causal_mask=True), weights 0.7, 1.3
# B2: Attention(use_scale=True)([q, v, k]), scale -0.6
# C: Masking -> AdditiveAttention() with scale [0.9, -1.4], scores
# D: AdditiveAttention(use_scale=False)([q, v], use_causal_mask=True), Tq 4 > Tv 3
# E: Embedding(mask_zero) -> LSTM(3, return_sequences, return_state) encoder; Embedding -> LSTM(3,
#    return_sequences, initial_state=[h, c]) decoder; AdditiveAttention()([dec, enc]);
#    Dense(4)(Concatenate()([dec, ctx])); its weights rounded to 3 decimals
A_Q = [[[0.001, 0.299], [-0.274, -0.891], [0.0, 0.0]], [[0.06, 1.34], [-0.492, -0.62], [0.49, 0.357]], [[0.105, -0.93], [-0.029, 0.695], [-1.344, -0.458]]]
A_V = [[[-1.901, -1.29], [-1.842, -0.235], [-1.267, 0.271], [0.0, 0.0]], [[0.0, 0.0], [-0.049, 0.113], [-1.53, -0.478], [-0.979, -0.809]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]
A_C = [[[-1.625554919, -0.297400475], [-1.803546309, -0.830627024], [0.0, 0.0]], [[-0.563675046, -0.182030499], [-1.084647298, -0.527410746], [-0.592634439, -0.239918232]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]
A_S = [[[0.252095759, 0.345610708, 0.402293533, 0.0], [0.627533555, 0.241199911, 0.131266564, 0.0], [0.333333343, 0.333333343, 0.333333343, 0.0]], [[0.0, 0.591936648, 0.245328873, 0.162734419], [0.0, 0.147313952, 0.440379977, 0.41230607], [0.0, 0.541092038, 0.212069139, 0.246838778]], [[0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]]]
B_Q = [[[-1.225, 0.076, 1.359], [-1.547, 0.859, 0.119], [-0.641, 2.0, 0.762]], [[-1.199, 0.075, 0.577], [-0.189, 0.683, -0.067], [0.667, 1.439, -0.676]]]
B_V = [[[-0.25, 1.524], [-0.428, -0.304], [0.353, -0.121]], [[-0.197, -1.114], [-0.012, -0.444], [1.166, 0.653]]]
B_K = [[[0.203, -0.463, 0.127], [-1.187, -0.579, -0.196], [0.899, 1.145, -1.324]], [[-0.795, 0.647, -1.992], [-0.463, -0.097, 1.257], [0.689, -0.327, -0.369]]]
B_C = [[[-0.25, 1.524000049], [-0.309860379, 0.909254014], [-0.076271966, 0.639023483]], [[-0.196999997, -1.113999963], [-0.037688956, -0.537035704], [0.337467551, -0.1659365]]]
B_S = [[[1.0, 0.0, 0.0], [0.663705662, 0.336294338, 0.0], [0.481784795, 0.177664184, 0.34055102]], [[1.0, 0.0, 0.0], [0.138859209, 0.861140791, 0.0], [0.095182763, 0.593207432, 0.311609805]]]
B2_C = [[[0.20435296, 0.117678255], [-0.023314089, 0.594408751], [-0.21127677, 0.578000247]], [[0.575509071, -0.054454505], [0.440962225, -0.133091897], [0.269525349, -0.233197704]]]
C_Q = [[[-0.024, 0.668], [-0.34, 1.052], [-0.005, 0.583]], [[0.0, 0.0], [-1.688, -2.035], [-0.304, -0.9]]]
C_V = [[[0.164, 2.245], [0.0, 0.0], [0.205, 0.493], [-0.176, -0.206]], [[0.702, 0.52], [-1.034, -0.079], [0.035, -1.054], [0.0, 0.0]]]
C_C = [[[0.037762806, 0.649507999], [0.058759671, 0.77152282], [0.03128811, 0.612976789]], [[0.0, 0.0], [-0.062471323, -0.199760869], [0.058661651, -0.3119739]]]
C_S = [[[0.253570413, 0.0, 0.334773915, 0.411655672], [0.299264398, 0.0, 0.349107036, 0.351628566], [0.240078635, 0.0, 0.32981987, 0.430101495]], [[0.195091466, 0.122681306, 0.682227228, 0.0], [0.350694948, 0.309995188, 0.339309864, 0.0], [0.349901491, 0.196185823, 0.453912686, 0.0]]]
D_Q = [[[0.972, 0.193], [0.089, -0.591], [-0.119, -1.998], [-1.131, 0.363]], [[-2.129, 0.847], [-1.746, 0.757], [-0.845, 0.779], [0.131, -1.537]]]
D_V = [[[1.249, 1.442], [-0.066, -0.274], [-0.16, -0.975]], [[1.099, -0.543], [-0.051, -0.793], [-0.626, -1.278]]]
D_C = [[[1.248999953, 1.442000031], [1.122317672, 1.276686788], [0.834978819, 0.818279266], [0.980919123, 1.052975297]], [[1.098999977, -0.542999983], [0.697698653, -0.630239367], [0.675631285, -0.674215198], [0.526402175, -0.722928226]]]
E_SRC = [[1, 2, 3, 0], [4, 5, 0, 0], [2, 2, 1, 5]]
E_TGT = [[6, 1, 4], [6, 2, 3], [6, 5, 5]]
E_W = [[[0.028, 0.043], [0.014, -0.05], [0.014, 0.04], [0.022, -0.045], [-0.035, -0.026], [-0.033, 0.028]], [[-0.016, 0.002], [-0.048, 0.042], [-0.011, -0.042], [0.025, 0.01], [-0.01, -0.034], [0.048, 0.034], [0.019, 0.039]], [[-0.567, 0.617, 0.462, 0.331, 0.123, 0.291, -0.071, 0.246, 0.115, -0.156, -0.089, -0.126], [-0.317, -0.278, -0.337, 0.18, 0.33, 0.156, 0.295, 0.135, 0.443, 0.284, 0.434, 0.059]], [[0.247, 0.167, -0.282, -0.056, -0.273, 0.106, 0.44, -0.037, -0.604, -0.181, -0.086, 0.378], [0.196, -0.154, -0.097, -0.393, -0.059, 0.296, 0.176, -0.461, -0.015, -0.109, -0.045, -0.652], [-0.191, 0.213, -0.159, 0.131, -0.136, 0.083, -0.666, -0.116, -0.478, 0.135, -0.326, -0.199]], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [[-0.068, -0.318, 0.29, 0.123, -0.041, 0.085, 0.159, -0.401, 0.357, 0.165, 0.096, 0.449], [0.075, -0.092, 0.495, -0.619, -0.265, 0.45, 0.583, -0.334, -0.138, -0.538, -0.586, 0.537]], [[0.342, -0.035, 0.193, -0.541, -0.012, 0.066, 0.005, -0.282, -0.082, 0.104, -0.658, 0.131], [0.081, -0.193, -0.128, -0.266, 0.341, -0.146, -0.328, -0.609, 0.128, 0.014, 0.406, -0.266], [0.104, 0.088, 0.579, -0.036, 0.402, -0.506, -0.061, 0.233, -0.22, 0.144, 0.191, 0.253]], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.667, 0.925, -0.673], [[-0.761, -0.528, -0.46, -0.088], [-0.078, -0.708, -0.715, 0.495], [0.081, 0.1, -0.225, -0.27], [-0.504, -0.665, 0.3, 0.07], [0.371, 0.686, -0.577, -0.586], [0.17, -0.242, -0.668, -0.391]], [0.0, 0.0, 0.0, 0.0]]
E_Y = [[[-0.001324559, 0.003735113, 0.002137463, -0.001857665], [-0.004694597, -0.000710226, -0.000321374, 0.000710354], [0.000482375, 0.000630788, -0.000271404, 0.002442633]], [[-0.007235863, -0.001218754, 0.004202702, -0.001645536], [-0.001618918, -0.00181397, 0.003005942, 0.002463956], [-0.00306051, -0.000554565, 0.003853043, 0.000101298]], [[-0.00507956, -0.00098078, -0.002410143, -0.005671433], [-0.008394617, 0.000553187, -0.00128266, -0.009614759], [-0.011210858, 0.000936884, -0.00103508, -0.012079647]]]

A = np.array
TOL = 2e-7


def predict(text, xs, weights=None, dtype="float64"):
    m = rnndsl.compile(text, dtype=dtype)
    if weights is not None:
        m.set_weights([A(w) for w in weights])
    return m, m.predict([A(x) for x in xs])


def test_dot_with_masks_equals_keras():
    m, (c, s) = predict("input q: float[3, 2]\ninput v: float[4, 2]\nqm = q | masking()\nvm = v | masking()\n"
                        "a = attention(qm, vm, return_attention_scores=true)\noutput a\noutput a.scores",
                        [A_Q, A_V])
    np.testing.assert_allclose(c, A_C, atol=TOL)
    np.testing.assert_allclose(s, A_S, atol=TOL)
    assert m.count_params() == 0


def test_concat_scale_key_causal_equals_keras():
    m, (c, s) = predict("input q: float[3, 3]\ninput v: float[3, 2]\ninput k: float[3, 3]\n"
                        'a = attention(q, v, k, use_scale=true, score_mode="concat", use_causal_mask=true, '
                        "return_attention_scores=true)\noutput a\noutput a.scores", [B_Q, B_V, B_K], [0.7, 1.3])
    np.testing.assert_allclose(c, B_C, atol=TOL)
    np.testing.assert_allclose(s, B_S, atol=TOL)
    assert m.weight_names() == ["a/scale", "a/concat_score_weight"]       # Keras's names and order
    assert [w.shape for w in m.get_weights()] == [(), ()]
    _, c = predict("input q: float[3, 3]\ninput v: float[3, 2]\ninput k: float[3, 3]\n"
                   "output attention(q, v, k, use_scale=true)", [B_Q, B_V, B_K], [-0.6])
    np.testing.assert_allclose(c, B2_C, atol=TOL)


def test_additive_equals_keras():
    m, (c, s) = predict("input q: float[3, 2]\ninput v: float[4, 2]\nqm = q | masking()\nvm = v | masking()\n"
                        "a = additive_attention(qm, vm, return_attention_scores=true)\noutput a\noutput a.scores",
                        [C_Q, C_V], [[0.9, -1.4]])
    np.testing.assert_allclose(c, C_C, atol=TOL)
    np.testing.assert_allclose(s, C_S, atol=TOL)
    assert m.weight_names() == ["a/scale"] and m.count_params() == 2
    _, c = predict("input q: float[4, 2]\ninput v: float[3, 2]\n"
                   "output additive_attention(q, v, use_scale=false, use_causal_mask=true)", [D_Q, D_V])
    np.testing.assert_allclose(c, D_C, atol=TOL)


ENC_DEC = """input src: int[4]
input tgt: int[3]
enc = src | embed(6, 2, mask_zero=true) | lstm(3, seq, state)
dec = tgt | embed(7, 2, mask_zero=true) | lstm(3, seq, initial_state=enc.state)
ctx = additive_attention(dec, enc)
output concat(dec, ctx) | dense(4)
"""


def test_encoder_decoder_equals_keras():
    m, y = predict(ENC_DEC, [E_SRC, E_TGT], E_W)
    np.testing.assert_allclose(y, E_Y, atol=TOL)
    assert m.count_params() == 201                               # Keras's summary
    assert m.weight_names()[8] == "ctx/scale"
    text = m.summary_text()
    assert "ctx (AdditiveAttention)    (None, 3, 3)" in text and "dec, enc" in text


def test_scores_port_summary_and_masks():
    m = rnndsl.compile("input q: float[3, 2]\ninput v: float[5, 2]\nqm = q | masking()\n"
                       "a = attention(qm, v, return_attention_scores=true)\noutput a | gru(2)\noutput w = a.scores")
    node = m.graph.node(m.graph.outputs[1].ref)
    assert node.outputs["out"].masked and not node.outputs["scores"].masked     # Keras: scores carry no mask
    assert "[(None, 3, 2), (None, 3, 5)]" in m.summary_text()
    assert m.output_names == ["gru", "w"]
    assert 'label="scores"' in m.to_dot()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_dtypes_equal_numpy(dtype):
    """Every score mode against a NumPy reference, with a value mask and the causal mask."""
    rng = np.random.default_rng(4)
    q, v, k = rng.normal(size=(3, 4, 3)), rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 5, 3))
    v[0, 3:] = 0.0
    v[2] = 0.0                                               # every value step padded
    tol = 2e-6 if dtype == "float32" else 1e-12
    for body, weights in [('attention(q, vm, k, use_scale=true)', [0.8]),
                          ('attention(q, vm, k, score_mode="concat", use_scale=true, use_causal_mask=true)',
                           [1.2, 0.6]),
                          ('additive_attention(q, vm, k)', [[0.3, -0.5, 1.1]]),
                          ('additive_attention(q, vm, k, use_scale=false, use_causal_mask=true)', None)]:
        m, got = predict(f"input q: float[4, 3]\ninput v: float[5, 2]\ninput k: float[5, 3]\n"
                         f"vm = v | masking()\noutput {body}", [q, v, k], weights, dtype)
        w = [A(x, dtype=np.float64) for x in weights or []]
        if "additive" in body:
            S = np.tanh(q[:, :, None] + k[:, None]) * (w[0] if w else 1.0)
            S = S.sum(-1)
        elif "concat" in body:
            S = w[1] * np.tanh(w[0] * (q[:, :, None] + k[:, None])).sum(-1)
        else:
            S = w[0] * q @ k.transpose(0, 2, 1)
        keep = np.broadcast_to((v != 0).any(-1)[:, None, :], S.shape)
        if "causal" in body:
            keep = keep & (np.arange(5)[None, :] <= np.arange(4)[:, None])
        S = np.where(keep, S, S - (np.float32(1e9) if dtype == "float32" else 1e9))
        P = np.exp(S - S.max(-1, keepdims=True))
        P /= P.sum(-1, keepdims=True)
        np.testing.assert_allclose(got, P @ v, atol=tol, err_msg=body)


IDS_Q = np.array([[1, 2, 3], [4, 0, 0], [2, 5, 1]])
# (no row of scores wholly masked here: its shift by 1e9 rounds the scores, which finite
# differences of 1e-6 then cannot see; the forward tests above hold such rows)
IDS_V = np.array([[3, 1, 0, 0], [1, 2, 4, 5], [2, 0, 5, 0]])
TOKENS = "input a: int[3]\ninput b: int[4]\nq = a | embed(6, 2, mask_zero=true)\nv = b | embed(6, 2, mask_zero=true)\n"


@pytest.mark.parametrize("body", [
    "attention(q, v)",
    "attention(q, v, use_scale=true, use_causal_mask=true)",
    'attention(q, v, score_mode="concat")',
    'attention(q, v, score_mode="concat", use_scale=true, dropout=0.3)',
    "additive_attention(q, v)",
    "additive_attention(q, v, use_scale=false, dropout=0.4)",
])
def test_masked_gradients_equal_finite_differences(body):
    """Query and value masks (mask_zero), every score mode: the embeddings, the attention's and
    the dense weights by central differences; a padded query step's loss weighs 0."""
    check(TOKENS + f"output {body} | dense(3)", [IDS_Q, IDS_V], np.array([[0, 1, 2], [2, 1, 0], [1, 1, 2]]))


@pytest.mark.parametrize("body", [
    "attention(q, v, k, use_scale=true, use_causal_mask=true, dropout=0.3, return_attention_scores=true)",
    'attention(q, v, k, score_mode="concat", use_scale=true, return_attention_scores=true)',
    "additive_attention(q, v, k, return_attention_scores=true, use_causal_mask=true)",
])
def test_key_and_scores_gradients_equal_finite_differences(body):
    """A key of its own, the scores as a second output: input gradients (query, value, key) too."""
    rng = np.random.default_rng(9)
    xs = [rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 2))]
    check(f"input q: float[3, 2]\ninput v: float[3, 3]\ninput k: float[3, 2]\na = {body}\n"
          "output a | dense(2)\noutput a.scores", xs, [rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 3))],
          loss="mse", from_logits=False)


def test_scores_alone_gradients_equal_finite_differences():
    """Only the weights are used: the context's gradient is absent, the value's is zero."""
    rng = np.random.default_rng(5)
    check("input q: float[3, 2]\ninput v: float[4, 2]\n"
          "a = additive_attention(q, v, dropout=0.2, return_attention_scores=true)\noutput a.scores",
          [rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 4, 2))], rng.normal(size=(2, 3, 4)), loss="mse",
          from_logits=False)


def test_self_attention_gradients_equal_finite_differences():
    """One sequence as query and value (its gradient summed from both), causal."""
    rng = np.random.default_rng(2)
    check("input x: float[4, 2]\nh = x | dense(3)\noutput attention(h, h, use_causal_mask=true, use_scale=true) "
          "| dense(2)", rng.normal(size=(2, 4, 2)), rng.integers(0, 2, (2, 4)))


def test_dropout_only_in_training():
    m = rnndsl.compile("input q: float[3, 2]\ninput v: float[4, 2]\n"
                       "a = attention(q, v, dropout=0.5, return_attention_scores=true)\noutput a\noutput a.scores",
                       dtype="float64")
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 4, 2))]
    c, s = m.predict(xs)
    np.testing.assert_allclose(s.sum(-1), 1.0, atol=1e-12)                 # inference: no dropout
    tape = m.executor.forward(m.executor.prepare_inputs(xs), training=True)
    dropped = tape.outputs[1].data
    assert np.any(dropped == 0.0) and set(np.round(np.unique(dropped / np.maximum(s.transpose(1, 0, 2), 1e-300)),
                                                   9)) <= {0.0, 2.0}


def test_variable_steps_and_key_length_checked_at_run_time():
    m = rnndsl.compile("input q: float[?, 2]\ninput v: float[?, 3]\ninput k: float[?, 2]\n"
                       "output attention(q, v, k)", dtype="float64")
    rng = np.random.default_rng(0)
    assert m.predict([rng.normal(size=(2, 5, 2)), rng.normal(size=(2, 3, 3)),
                      rng.normal(size=(2, 3, 2))]).shape == (2, 5, 3)
    c = m.predict([rng.normal(size=(2, 5, 2)), np.zeros((2, 0, 3)), np.zeros((2, 0, 2))])
    np.testing.assert_array_equal(c, np.zeros((2, 5, 3)))                # no value steps: a zero context
    assert m.predict([np.zeros((2, 0, 2)), rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 2))]).shape == (2, 0, 3)
    with pytest.raises(rnndsl.DataError, match="the key has 4 steps and the value 3"):
        m.predict([rng.normal(size=(2, 5, 2)), rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 4, 2))])


Q2 = "input q: float[3, 2]\ninput v: float[4, 2]\n"


@pytest.mark.parametrize("case", [
    (Q2 + "output attention(q)", 3, "attention", "takes a query and a value (and a key), got 1", "attention(dec, enc)"),
    (Q2 + "input w: float[4, 2]\ninput k: float[4, 2]\noutput attention(q, v, k, w)", 5, "attention",
     "got 4 input(s)", None),
    ("input q: float[3, 2]\ninput v: float[4, 3]\noutput attention(q, v)", 3, "v)",
     "the query has 2 features and the value 3", "dense"),
    ("input q: float[3, 2]\ninput v: float[4, 3]\ninput k: float[5, 2]\noutput additive_attention(q, v, k)", 4,
     "k)", "needs as many steps as the value, got 5 and 4", None),
    ("input q: int[3]\ninput v: float[4, 2]\noutput attention(q, v)", 3, "q,", "the query of attention is token ids",
     "embed"),
    ("input q: float[3, 2]\ninput v: float[4, 2]\nh = v | lstm(2)\noutput attention(q, h)", 4, "h)",
     "the value of attention must be a sequence", "seq"),
    ("input q: float[3, 2]\ninput v: float[?, 2]\noutput attention(q, v, return_attention_scores=true)", 3, "true",
     "the value's number of steps, which is `?`", "declare the value's steps"),
    (Q2 + 'output attention(q, v, score_mode="sum")', 3, '"sum"', "score_mode does not accept 'sum'", "dot"),
    (Q2 + 'output additive_attention(q, v, score_mode="dot")', 3, "score_mode", "has no option 'score_mode'", None),
    (Q2 + "output attention(q, v, dropout=1.5)", 3, "1.5", "dropout is a fraction", None),
    ("input q: float[100000, 2]\ninput v: float[100000, 2]\noutput attention(q, v)", 3, "attention",
     "one sample's scores holds 10,000,000,000 elements", "fewer steps"),
    ("input q: float[10000, 30]\ninput v: float[10000, 30]\noutput additive_attention(q, v)", 3, "additive",
     "tanh(query + key) terms holds 3,000,000,000 elements", None),
    (Q2 + "a = attention(q, v)\noutput a.scores", 4, "a.scores", "a has no port 'scores'", None),
    (Q2 + "a = attention(q, v, return_attention_scores=true)\noutput a.score", 4, "a.score", "no port 'score'",
     "scores"),
])
def test_bad_uses_are_spec_errors_at_their_place(case):
    check_case(case)


def test_piped_query_scalar_weights_saved_and_loaded(tmp_path):
    """`q | attention(v)` is attention(q, v); the 0-d weights keep their shape through a checkpoint."""
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 4, 2))]
    piped = rnndsl.compile(Q2 + 'output q | attention(v, use_scale=true, score_mode="concat")', dtype="float64")
    named = rnndsl.compile(Q2 + 'output attention(q, v, use_scale=true, score_mode="concat")', dtype="float64")
    piped.set_weights([A(0.5), A(-2.0)])
    named.set_weights(piped.get_weights())
    np.testing.assert_array_equal(piped.predict(xs), named.predict(xs))
    piped.configure(loss="mse", optimizer="adam")
    piped.fit(xs, rng.normal(size=(2, 3, 2)), epochs=2, verbose=0)
    piped.save(tmp_path / "m.npz")
    back = rnndsl.load_model(tmp_path / "m.npz")
    assert [w.shape for w in back.get_weights()] == [(), ()]
    np.testing.assert_array_equal(back.predict(xs), piped.predict(xs))
    with pytest.raises(rnndsl.WeightsError, match=r"has shape \(\), got \(1,\)"):
        back.set_weights([A([0.5]), A(1.0)])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dot_kernel_equals_plain_route(dtype):
    """The dot scores' compiled kernel (kernels/cpu/attention.py) against the NumPy route the
    plain paths take, through a model: masked query and value, causal, scale, dropout, the
    scores as an output, the context's gradient a view of concat's; the outputs and every
    weight and input gradient of a train-mode pass."""
    from rnndsl.kernels.cpu.paths import plain_paths
    m = rnndsl.compile("input q: float[5, 16]\ninput v: float[7, 16]\ninput k: float[7, 16]\n"
                       "qm = q | masking()\nvm = v | masking()\n"
                       "a = attention(qm, vm, k, use_scale=true, use_causal_mask=true, dropout=0.2, "
                       "return_attention_scores=true)\noutput concat(qm, a) | dense(3)\noutput a.scores",
                       dtype=dtype)
    m.set_weights([A(0.4)] + m.get_weights()[1:])
    rng = np.random.default_rng(8)
    xs = [rng.normal(size=(9, 5, 16)), rng.normal(size=(9, 7, 16)), rng.normal(size=(9, 7, 16))]
    xs[0][2, 3:] = 0.0
    xs[1][4] = 0.0                                           # a sample whose every value step is padding
    xs[1][1, 5:] = 0.0
    runs = []
    for plain in (False, True):
        m.executor.rng = np.random.default_rng(3)            # the same dropout both ways
        with plain_paths(plain):
            tape = m.executor.forward(m.executor.prepare_inputs(xs), training=True)
            outs = [np.array(o.data) for o in tape.outputs]
            dW, dX = m.executor.backward(tape, [np.ones_like(o) for o in outs])
        runs.append(outs + [g for g in dW + dX if g is not None])
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-11, atol=1e-12)
    assert len(runs[0]) == len(runs[1]) == 2 + 3 + 3
    for got, want in zip(*runs):
        np.testing.assert_allclose(got, want, **tol)
