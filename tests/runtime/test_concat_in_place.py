"""A dense layer reading a concat's parts in place (Act.parts; runtime/cpu/dense.py)
against the plain route, which joins them: predictions, loss and every gradient, float64
to rounding and float32 within its tolerance, with the join made only where another
reader asks for it."""

from __future__ import annotations

import numpy as np
import pytest

import rnndsl
from rnndsl.kernels.cpu import paths

SPECS = {
    "attention": ("input src: int[?]\ninput tgt: int[?]\n"
                  "enc = src | embed(30, 6) | lstm(7, seq, state)\n"
                  "dec = tgt | embed(40, 6, mask_zero=true) | lstm(7, seq, initial_state=enc.state)\n"
                  "ctx = attention(dec, enc)\noutput concat(dec, ctx) | dense(5)\n"),
    "three vectors": ("input x: float[4, 3]\na = x | lstm(5)\nb = x | gru(3)\nc = x | simplernn(2)\n"
                      "output concat(a, b, c) | dense(4, activation=tanh) | dense(3)\n"),
    "two readers": ("input x: float[4, 3]\na = x | lstm(5, seq)\nb = x | gru(3, seq)\nj = concat(a, b)\n"
                    "y = j | dense(4)\nz = j | lstm(3, seq) | dense(4)\noutput add(y, z) | dense(3)\n"),
}


def _data(name, rng, B=6):
    if name == "attention":
        tgt = rng.integers(1, 40, (B, 5))
        tgt[0, 3:] = 0
        return [rng.integers(0, 30, (B, 4)), tgt], rng.integers(0, 5, (B, 5))
    y = rng.integers(0, 3, (B, 4)) if name == "two readers" else rng.integers(0, 3, B)
    return rng.standard_normal((B, 4, 3)), y


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dense_over_a_concat_equals_the_plain_route(name, dtype):
    text = SPECS[name]
    x, y = _data(name, np.random.default_rng(1))
    if dtype == "float32":
        x = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in x] if isinstance(x, list) else \
            x.astype(np.float32)
    ref = rnndsl.compile(text, dtype="float64", seed=2)
    m = rnndsl.compile(text, dtype=dtype, seed=2)
    ref.set_weights([w.astype(np.float64) for w in m.get_weights()])
    with paths.plain_paths(True):
        want = ref.predict_on_batch(x), *ref.loss_and_gradients(x, y)
    got = m.predict_on_batch(x), *m.loss_and_gradients(x, y)
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(got[0], want[0], atol=tol, rtol=tol)
    np.testing.assert_allclose(got[1], want[1], atol=tol, rtol=tol)
    for g, w in zip(got[2], want[2]):
        if w is not None:
            np.testing.assert_allclose(g, w, atol=tol * 10, rtol=tol * 10)


@pytest.mark.parametrize("name,made", [("attention", False), ("three vectors", False), ("two readers", True)])
def test_the_join_is_made_only_for_a_reader_that_asks(name, made):
    m = rnndsl.compile(SPECS[name], seed=2)
    ex = m.executor
    x, _ = _data(name, np.random.default_rng(1))
    tape = ex.forward(ex.prepare_inputs(x if isinstance(x, list) else [x]), training=False)
    joins = [v for (nid, port), v in tape.values.items() if ex.graph.nodes[nid].kind == "concat"]
    assert joins and all(v.parts is not None and (v.unmade_parts() is None) == made for v in joins)
