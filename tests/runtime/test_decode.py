"""Model.decode: one compiled step at a time, held against the whole model run over every
prefix (teacher forcing) and, for beam search, against exhaustive search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import rnndsl
from rnndsl.errors import DataError

SEQ2SEQ = """
input src: int[5]
input tgt: int[3]
enc = src | embed(7, 6) | {enc}(5, state)
dec = tgt | embed(4, 6) | {dec}(5, seq, initial_state=enc.state)
output dec | dense(3{act})
"""

LM = """
input x: int[?]
output x | embed(5, 4) | gru(7, seq) | lstm(6, seq) | dense(5)
"""


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture(scope="module")
def s2s():
    m = rnndsl.compile(SEQ2SEQ.format(enc="lstm", dec="lstm", act=""), dtype="float64", seed=5)
    # weights large enough that the next token depends on the prefix and the source
    m.set_weights([w * 3 for w in m.get_weights()])
    src = np.random.default_rng(1).integers(0, 7, (9, 5))
    return m, src


def teacher_forced(m, src, start, seqs):
    """log p of each row's tokens given its prefix, from the whole model over the sequence."""
    dec_in = np.concatenate([np.full((len(seqs), 1), start), seqs[:, :-1]], axis=1)
    lp = log_softmax(m.predict([src, dec_in]))
    return np.take_along_axis(lp, seqs[..., None], -1)[..., 0]


def test_greedy_equals_rerunning_the_prefix(s2s):
    m, src = s2s
    tokens, scores = m.decode(src, start=3, return_scores=True)
    assert tokens.shape == (9, 3) and tokens.dtype == np.int64
    # the O(T^2) way: the whole decoder over the prefix, the argmax of its last step
    dec_in = np.full((9, 3), 0)
    dec_in[:, 0] = 3
    for t in range(3):
        out = m.predict([src, dec_in])
        if t < 2:
            dec_in[:, t + 1] = out[:, t].argmax(-1)
    np.testing.assert_array_equal(tokens, out.argmax(-1))
    np.testing.assert_allclose(scores, teacher_forced(m, src, 3, tokens).sum(1), rtol=1e-12)
    assert len(set(map(tuple, tokens))) > 1          # the source matters


def test_beam_of_one_is_greedy_and_wide_beam_is_exhaustive(s2s):
    m, src = s2s
    g_tok, g_sc = m.decode(src, start=3, return_scores=True)
    b_tok, b_sc = m.decode(src, start=3, method="beam", beam_width=1, return_scores=True)
    np.testing.assert_array_equal(b_tok, g_tok)
    np.testing.assert_allclose(b_sc, g_sc, rtol=1e-12)
    for end in (None, 2):
        b_tok, b_sc = m.decode(src, start=3, end=end, method="beam", beam_width=9, return_scores=True)
        every = np.array(list(itertools.product(range(3), repeat=3)))          # 27 sequences
        best_tok, best_sc = [], []
        for r in range(len(src)):
            lp = teacher_forced(m, np.repeat(src[r:r + 1], len(every), 0), 3, every)
            if end is not None:           # a sequence ends at its first end token
                after = np.cumsum(every == end, axis=1) - (every == end) > 0
                lp = np.where(after, 0.0, lp)
                canon = np.where(after, end, every)
            else:
                canon = every
            total = lp.sum(1)
            i = int(total.argmax())
            best_tok.append(canon[i])
            best_sc.append(total[i])
        best_tok = np.array(best_tok)
        np.testing.assert_allclose(b_sc, best_sc, rtol=1e-12)
        np.testing.assert_array_equal(b_tok, best_tok[:, :b_tok.shape[1]])
        assert np.all(best_tok[:, b_tok.shape[1]:] == end) if b_tok.shape[1] < 3 else True
        assert np.all(b_sc >= g_sc - 1e-12)
    # a narrow beam is somewhere between: never worse than greedy here
    n_tok, n_sc = m.decode(src, start=3, method="beam", beam_width=2, return_scores=True)
    assert np.all(n_sc >= g_sc - 1e-12) and np.all(n_sc <= b_sc + 1e-12)


def test_end_token_finishes_a_row(s2s):
    m, src = s2s
    tokens, scores = m.decode(src, start=3, end=2, return_scores=True)
    free = m.decode(src, start=3)
    per_step = teacher_forced(m, src, 3, free)
    assert (free == 2).any() and not (free == 2).all()
    for r in range(len(src)):
        row = list(free[r])
        k = row.index(2) if 2 in row else 2
        assert list(tokens[r, :k + 1]) == row[:k + 1] and np.all(tokens[r, k + 1:] == 2)
        assert scores[r] == pytest.approx(per_step[r, :k + 1].sum(), rel=1e-12)
    ended = (free == 2).any(axis=1)
    if ended.all():                   # every row ended: the decode stopped early
        assert tokens.shape[1] == max(list(r).index(2) for r in free) + 1
    # longer than the decoder input declares
    assert m.decode(src, start=3, max_len=7).shape == (9, 7)


def test_sampling_is_seeded_and_cold_sampling_is_greedy(s2s):
    m, src = s2s
    a = m.decode(src, start=3, method="sample", seed=4, max_len=8)
    b = m.decode(src, start=3, method="sample", seed=4, max_len=8)
    c = m.decode(src, start=3, method="sample", seed=5, max_len=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(m.decode(src, start=3, method="sample", seed=4, temperature=1e-4, max_len=8),
                                  m.decode(src, start=3, max_len=8))


def test_per_row_start_and_dict_inputs(s2s):
    m, src = s2s
    starts = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0])
    tokens = m.decode({"src": src}, start=starts)
    for r in (0, 3):
        np.testing.assert_array_equal(tokens[r], m.decode(src[r:r + 1], start=int(starts[r]))[0])


def test_softmax_output_and_gru_encoder_decoder():
    logits = rnndsl.compile(SEQ2SEQ.format(enc="gru", dec="simplernn", act=""), dtype="float64", seed=2)
    probs = rnndsl.compile(SEQ2SEQ.format(enc="gru", dec="simplernn", act=', activation="softmax"'),
                           dtype="float64", seed=2)
    probs.set_weights(logits.get_weights())
    src = np.random.default_rng(3).integers(0, 7, (4, 5))
    for method in ("greedy", "beam"):
        a = logits.decode(src, start=1, method=method, beam_width=3, temperature=0.7, return_scores=True)
        b = probs.decode(src, start=1, method=method, beam_width=3, temperature=0.7, return_scores=True)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-9)


ATTENTION = """
input src: int[5]
input tgt: int[3]
enc = src | embed(7, 6) | gru(5, seq, state)
dec = tgt | embed(4, 6) | gru(5, seq, initial_state=enc.state)
ctx = attention(dec, enc, use_scale=true)
output concat(dec, ctx) | dense(3)
"""


def test_step_with_the_encoder_input_given_whole():
    """Model.step of an attention decoder: the encoder input whole, the decoder's one token a
    call; the steps equal the whole model over the sequence, and start again on reset_states
    or another encoder input."""
    m = rnndsl.compile(ATTENTION, dtype="float64", seed=4)
    src = np.random.default_rng(2).integers(0, 7, (6, 5))
    dec_in = np.random.default_rng(3).integers(0, 4, (6, 3))
    whole = m.predict([src, dec_in])
    steps = np.stack([m.step({"src": src, "tgt": dec_in[:, t]}) for t in range(3)], axis=1)
    np.testing.assert_allclose(steps, whole, rtol=1e-12, atol=1e-14)
    m.reset_states()
    np.testing.assert_allclose(m.step([src, dec_in[:, 0]]), whole[:, 0], rtol=1e-12, atol=1e-14)
    other = src[::-1].copy()
    np.testing.assert_allclose(m.step([other, dec_in[:, 0]]), m.predict([other, dec_in])[:, 0], rtol=1e-12,
                               atol=1e-14)
    # states as inputs: vectors are given whole, the sequence a step at a time
    s = rnndsl.compile("""
input x: float[?, 2]
input h0: float[3]
input c0: float[3]
output x | lstm(3, seq, initial_state=[h0, c0]) | dense(2)
""", dtype="float64", seed=1)
    rng = np.random.default_rng(5)
    x, h0, c0 = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    got = np.stack([s.step({"x": x[:, t], "h0": h0, "c0": c0}) for t in range(3)], axis=1)
    np.testing.assert_allclose(got, s.predict([x, h0, c0]), rtol=1e-12, atol=1e-14)
    with pytest.raises(DataError, match="every input was given whole"):
        s.step([x, h0, c0])


def test_attention_decoder_steps_over_the_whole_encoder():
    m = rnndsl.compile(ATTENTION, dtype="float64", seed=4)
    m.set_weights([w * 3 for w in m.get_weights()])
    src = np.random.default_rng(2).integers(0, 7, (6, 5))
    src[:, 3:] = 0
    tokens, scores = m.decode(src, start=3, return_scores=True)
    np.testing.assert_allclose(scores, teacher_forced(m, src, 3, tokens).sum(1), rtol=1e-12)
    dec_in = np.full((6, 3), 3)
    for t in range(1, 3):
        dec_in[:, t] = m.predict([src, dec_in])[:, t - 1].argmax(-1)
    np.testing.assert_array_equal(tokens, m.predict([src, dec_in]).argmax(-1))
    causal = rnndsl.compile("""
input x: int[?]
h = x | embed(5, 4) | lstm(4, seq)
output attention(h, h, use_causal_mask=true) | dense(5)
""")
    with pytest.raises(DataError, match="layer 'attention' .* needs the whole sequence"):
        causal.decode(np.array([[1, 2]]), max_len=2)


def test_language_model_continues_its_prompt():
    m = rnndsl.compile(LM, dtype="float64", seed=7)
    m.set_weights([w * 3 for w in m.get_weights()])
    prompt = np.array([[1, 2, 3], [4, 4, 0]])
    tokens, scores = m.decode(prompt, max_len=4, return_scores=True)
    seq = prompt.copy()
    total = np.zeros(2)
    for t in range(4):
        lp = log_softmax(m.predict(seq))[:, -1]
        nxt = lp.argmax(-1)
        total += lp[np.arange(2), nxt]
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    np.testing.assert_array_equal(tokens, seq[:, 3:])
    np.testing.assert_allclose(scores, total, rtol=1e-12)
    # start= prefixes the prompt
    np.testing.assert_array_equal(m.decode(prompt[:, 1:], start=prompt[:, 0], max_len=4), tokens)
    # the model's stateful carry is untouched by decoding
    assert m.executor.states == {}


@pytest.mark.parametrize("spec, call, message", [
    (LM, dict(inputs=np.array([[1, 2]])), "declares no number of steps; pass max_len"),
    (LM, dict(inputs=np.array([[1, 2]]), max_len=3, method="top"), "method must be one of"),
    (LM, dict(inputs=np.array([[1, 2]]), max_len=3, temperature=0), "temperature must be a number > 0"),
    (LM, dict(inputs=np.array([[1, 2]]), max_len=3, end=5), "end=5 is not a token"),
    (LM, dict(inputs=np.array([[1, 9]]), max_len=3), "token id 9 is out of range"),
    (LM, dict(inputs=np.array([1, 2]), max_len=3), "shape (batch, steps >= 1)"),
    (LM, dict(inputs=np.array([[1, 2]]), max_len=3, beam_width=0, method="beam"), "beam_width must be"),
    ("input x: int[?]\noutput x | embed(5, 4) | bilstm(3, seq) | dense(5)\n", dict(inputs=np.array([[1]]), max_len=2),
     "layer 'bidirectional' (bilstm) at line 2 needs the whole sequence"),
    ("input x: int[?]\noutput x | embed(5, 4) | lstm(3) | dense(5)\n", dict(inputs=np.array([[1]]), max_len=2),
     "not a sequence of scores per step"),
    ("input x: int[?]\noutput x | embed(3, 4) | lstm(3, seq) | dense(5)\n", dict(inputs=np.array([[1]]), max_len=2),
     "scores 5 tokens, but 'embedding' reads only ids 0..2"),
    ("input x: float[?, 2]\noutput x | lstm(3, seq) | dense(5)\n", dict(inputs=np.zeros((1, 2, 2)), max_len=2),
     "decode needs a token-sequence input"),
    (SEQ2SEQ.format(enc="lstm", dec="lstm", act=""), dict(inputs=np.zeros((2, 5), int)), "pass start="),
    (SEQ2SEQ.format(enc="lstm", dec="lstm", act=""), dict(inputs=np.zeros((2, 5), int), start=[1, 2, 3]),
     "one per row (2)"),
])
def test_decode_refuses_what_it_cannot_do(spec, call, message):
    m = rnndsl.compile(spec)
    with pytest.raises(DataError) as e:
        m.decode(**call)
    assert message in str(e.value)


def test_decode_command(s2s, tmp_path, capsys):
    from rnndsl.cli import main

    m, src = s2s
    ckpt = tmp_path / "m.ckpt.npz"
    m.save(ckpt)
    (tmp_path / "src.txt").write_text("\n".join(" ".join(map(str, r)) for r in src) + "\n\n")
    assert main(["decode", str(ckpt), "--input", str(tmp_path / "src.txt"), "--start", "3"]) == 0
    printed = capsys.readouterr().out.split("\n")
    assert printed[:-1] == [" ".join(map(str, r)) for r in m.decode(src, start=3)]
    assert main(["decode", str(ckpt), "--tokens", " ".join(map(str, src[0])), "--start", "3", "--method", "beam",
                 "--beam-width", "3", "--json"]) == 0
    import json

    got = json.loads(capsys.readouterr().out)
    tok, sc = m.decode(src[:1], start=3, method="beam", beam_width=3, return_scores=True)
    assert got[0]["tokens"] == tok[0].tolist() and got[0]["score"] == pytest.approx(sc[0], rel=1e-12)
    np.savez(tmp_path / "src.npz", src=src)
    assert main(["decode", str(ckpt), "--input", str(tmp_path / "src.npz"), "--start", "3", "--max-len", "2"]) == 0
    assert capsys.readouterr().out.split("\n")[0] == " ".join(map(str, m.decode(src, start=3, max_len=2)[0]))
    # bad input: an rnndsl error (exit 1) or usage (exit 2), never an internal error
    (tmp_path / "bad.txt").write_text("1 2 3 4 5\n1 2 x 4 5\n")
    assert main(["decode", str(ckpt), "--input", str(tmp_path / "bad.txt"), "--start", "3"]) == 1
    assert "bad.txt, line 2: 'x' is not a token id" in capsys.readouterr().err
    (tmp_path / "ragged.txt").write_text("1 2 3 4 5\n1 2\n")
    assert main(["decode", str(ckpt), "--input", str(tmp_path / "ragged.txt"), "--start", "3"]) == 1
    assert "line 2: 2 token(s), but the first line has 5" in capsys.readouterr().err
    assert main(["decode", str(ckpt), "--tokens", "1 2 3", "--start", "3"]) == 1
    assert "expects 5 steps" in capsys.readouterr().err
    assert main(["decode", str(ckpt), "--tokens", "1 2 3 4 5"]) == 1
    assert "pass start=" in capsys.readouterr().err
    assert main(["decode", str(ckpt)]) == 2
    assert main(["decode", str(tmp_path / "none.npz"), "--tokens", "1"]) == 2
    assert main(["decode", str(ckpt), "--tokens", "1 2 3 4 5", "--start", "3", "--temperature", "nan"]) == 1


def test_decode_and_step_refuse_sizes_that_do_not_fit(s2s, tmp_path, capsys):
    from rnndsl.cli import main

    m, src = s2s
    with pytest.raises(DataError, match="candidates a step"):
        m.decode(src, start=3, method="beam", beam_width=10 ** 8)
    ed = rnndsl.compile(ATTENTION)
    with pytest.raises(DataError, match="different numbers of rows: src 2, tgt 3"):
        ed.step([np.zeros((2, 5), int), np.array([1, 1, 1])])
    ckpt = tmp_path / "m.ckpt.npz"
    m.save(ckpt)
    assert main(["decode", str(ckpt), "--tokens", "99999999999999999999999", "--start", "3"]) == 1
    assert "past the 64-bit range" in capsys.readouterr().err
