"""Every fast path against the plain route of the same model (rnndsl.kernels.cpu.paths).

Draws random small models (layer kinds, odd unit counts, batches larger than the
vocabulary, zero-, one-, two- and three-step sequences and longer ones, masks, go_backwards,
bidirectional, stateful, state edges, custom cells, dropout, batchnorm) and runs each
in float32 and float64 on its default (fast) routes, some with every split and threshold
forced, and once in float64 on the plain route, all with the same weights. Outputs, the
loss and every gradient must agree, and a stateful chain stepped one step at a time
must give what a whole-sequence predict gives. Some models' plain gradients are also held
against central differences.

Seeded and reproducible: a failure names the model's seed and spec, and
RNNDSL_DIFF_SEED=<seed> RNNDSL_DIFF_MODELS=1 re-runs just that model. The default suite
draws DEFAULT_MODELS; `pytest --deep` draws DEEP_MODELS, RNNDSL_DIFF_MODELS=N any number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest

import rnndsl
from rnndsl.kernels.cpu import lstm as lstm_kernels
from rnndsl.kernels.cpu import ops, parallel, paths
from rnndsl.runtime.cpu import recurrent

DEFAULT_MODELS = 600
DEEP_MODELS = 3000
UNITS = (1, 3, 5, 8, 9, 17, 33)
# float32 against float64: the fast activations' error and float32 rounding over a few
# steps stay far below this; a wrong row or a lost mask moves values by O(0.1)
TOL32 = 3e-3
TOL64 = 1e-9

# the cells tests/cells compiles too: the same generated modules, compiled once a process
from cells import cell_texts  # noqa: E402
CELLS = {"mgu": cell_texts.MGU, "peephole": cell_texts.PEEPHOLE}


@dataclass
class Case:
    """A drawn model: its spec, inputs, targets and what may be asked of it."""

    seed: int
    text: str
    x: list
    y: np.ndarray
    stateful: bool = False
    steppable: bool = False       # a stateful chain Model.step can run
    per_step_out: bool = False
    notes: list = field(default_factory=list)


def _units(rng) -> int:
    return int(rng.choice(UNITS))


def _recurrent_call(rng, u: int, seq: bool, masked: bool, stateful: bool, cells: set, allow_bi=True,
                    extra: str = "") -> str:
    """A random recurrent layer call of u units."""
    kind = rng.choice(["lstm", "lstm", "lstm", "gru", "gru", "simplernn", "cell", "bi"] if allow_bi
                      else ["lstm", "lstm", "gru", "simplernn", "cell"])
    opts = []
    if seq:
        opts.append("seq")
    if stateful:
        opts.append("stateful=true")
    if rng.random() < 0.2 and not stateful:
        opts.append("go_backwards=true")
    if masked and rng.random() < 0.4:
        opts.append("zero_output_for_mask=true")
    if rng.random() < 0.1:
        opts.append("use_bias=false")
    if rng.random() < 0.15:
        opts.append(f"dropout={rng.choice([0.1, 0.3])}")
    if rng.random() < 0.15:
        opts.append(f"recurrent_dropout={rng.choice([0.1, 0.3])}")
    if extra:
        opts.append(extra)
    if kind in ("lstm", "gru") and rng.random() < 0.15:
        opts.append(f'recurrent_activation="{rng.choice(["hard_sigmoid", "tanh"])}"')
    if kind in ("lstm", "gru", "simplernn") and rng.random() < 0.15:
        opts.append(f'activation="{rng.choice(["relu", "sigmoid", "linear"])}"')
    if kind == "gru" and rng.random() < 0.3:
        opts.append("reset_after=false")
    if kind == "bi":
        inner = rng.choice(["lstm", "gru", "simplernn"])
        opts = [o for o in opts if not o.startswith(("go_backwards", "stateful", "zero_output", "activation"))]
        merge = rng.choice(["concat", "sum", "mul", "ave"])
        return f'bidirectional({inner}({u}{"".join(", " + o for o in opts)}), merge_mode="{merge}")'
    if kind == "cell":
        name = rng.choice(sorted(CELLS))
        cells.add(name)
        opts = [o for o in opts if not o.startswith(("activation", "recurrent_activation", "reset_after",
                                                      "use_bias"))]
        return f'rnn({name}({u}){"".join(", " + o for o in opts)})'
    return f'{kind}({u}{"".join(", " + o for o in opts)})'


def draw(seed: int) -> Case:
    """A random model with its data (see the module docstring)."""
    rng = np.random.default_rng(seed)
    family = rng.choice(["chain", "chain", "chain", "encdec", "fanin", "stateful"])
    B = int(rng.choice([1, 2, 3, 5, 7, 16, 33, 70]) if rng.random() < 0.8 else rng.integers(1, 71))
    T = int(rng.choice([0, 1, 1, 2, 2, 3, 4, 6, 11]))
    C = int(rng.integers(2, 6))
    cells: set = set()
    lines = []
    per_step_out = False
    if family in ("chain", "stateful"):
        stateful = family == "stateful"
        tokens = rng.random() < 0.6
        masked = tokens and rng.random() < 0.4 and not stateful
        if tokens:
            V = int(rng.choice([2, 3, 5, 9, 40]))
            D = int(rng.choice([1, 3, 4, 8, 13]))
            lines.append("input x: int[?]")
            stages = [f"embed({V}, {D}{', mask_zero=true' if masked else ''})"]
            x = rng.integers(1 if masked else 0, V, size=(B, T))
            if masked:
                x[rng.random((B, T)) < 0.3] = 0       # padding anywhere, whole rows too
        else:
            F = int(rng.choice([1, 2, 6, 16]))
            lines.append(f"input x: float[?, {F}]")
            stages = []
            if rng.random() < 0.15 and not stateful:
                stages.append("batchnorm()")
            x = rng.normal(size=(B, T, F))
        depth = 1 if rng.random() < 0.6 else 2
        seq_out = rng.random() < 0.4
        for k in range(depth):
            last = k == depth - 1
            stages.append(_recurrent_call(rng, _units(rng), seq=(not last) or seq_out, masked=masked,
                                          stateful=stateful, cells=cells, allow_bi=not stateful))
            if not last and rng.random() < 0.2 and not stateful:
                stages.append(f"dropout({rng.choice([0.2, 0.5])})")
        if rng.random() < 0.3:
            stages.append(f'dense({_units(rng)}, activation="{rng.choice(["relu", "tanh", "sigmoid"])}")')
        stages.append(f"dense({C})")
        lines.append("output x | " + " | ".join(stages))
        per_step_out = seq_out
        xs = [x]
    elif family == "encdec":
        stateful = False
        V1, V2 = int(rng.choice([3, 7, 30])), int(rng.choice([2, 5, 30]))
        u = _units(rng)
        kind = rng.choice(["lstm", "gru", "simplernn"])
        T2 = int(rng.choice([0, 1, 2, 3, 5]))
        masked = rng.random() < 0.3
        lines += ["input src: int[?]", "input tgt: int[?]",
                  f"enc = src | embed({V1}, {int(rng.choice([3, 8]))}{', mask_zero=true' if masked else ''}) | "
                  f"{kind}({u}, state{', go_backwards=true' if rng.random() < 0.2 else ''})",
                  f"dec = tgt | embed({V2}, {int(rng.choice([4, 8]))}) | {kind}({u}, seq, initial_state=enc.state)",
                  f"output dec | dense({C})"]
        src = rng.integers(1 if masked else 0, V1, size=(B, T))
        if masked:
            src[:, : rng.integers(0, T + 1)] = 0      # left padding
        xs = [src, rng.integers(0, V2, size=(B, T2))]
        per_step_out = True
        T = T2
    else:   # fanin
        stateful = False
        F = int(rng.choice([2, 5]))
        u = _units(rng)
        op = rng.choice(["concat", "add"])
        lines += [f"input a: float[?, {F}]", f"input b: float[?, {F}]",
                  f"fa = a | {_recurrent_call(rng, u, True, False, False, cells)}",
                  f"fb = b | {_recurrent_call(rng, u, True, False, False, cells, allow_bi=False)}"]
        # a bidirectional concat half is 2u wide: add needs equal widths
        if op == "add" and "bidirectional" in lines[-2] and 'merge_mode="concat"' in lines[-2]:
            lines[-2] = lines[-2].replace('merge_mode="concat"', 'merge_mode="sum"')
        lines.append(f"output {op}(fa, fb) | {_recurrent_call(rng, _units(rng), False, False, False, cells)} "
                     f"| dense({C})")
        xs = [rng.normal(size=(B, T, F)), rng.normal(size=(B, T, F))]
    defs = "".join(CELLS[c] for c in sorted(cells))
    y = rng.integers(0, C, size=(B, T) if per_step_out else (B,))
    text = defs + "\n".join(lines) + "\n"
    steppable = stateful and not any(w in text for w in ("bidirectional", "rnn(", "go_backwards", "dropout"))
    return Case(seed, text, xs, y, stateful, steppable, per_step_out)


def _err(a, b) -> float:
    """Largest difference relative to b's scale."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-3))


def _compare(what, got, want, tol, case, route):
    err = _err(got, want)
    assert np.isfinite(np.asarray(got, np.float64)).all() and err <= tol, (
        f"{what}: {route} differs from the plain route by {err:.3g} (tolerance {tol})\n"
        f"seed {case.seed}: RNNDSL_DIFF_SEED={case.seed} RNNDSL_DIFF_MODELS=1\n{case.text}")


def _forced(mp):
    """Every split and threshold on its fast side: row splits into 3 parts, the unit split,
    the chunked wide-input inference."""
    mp.setattr(parallel, "WORKERS", 3)
    mp.setattr(ops, "MIN_SPLIT_GATHER", 0)
    mp.setattr(parallel, "MIN_SPLIT_WORK", 0)
    mp.setattr(parallel, "MIN_SPLIT_MATMUL", 0)
    mp.setattr(parallel, "MIN_ROWS", 1)
    mp.setattr(lstm_kernels, "UNIT_SPLIT_BYTES", 0)
    mp.setattr(lstm_kernels, "MAX_LOOP_GRAD", 10**9)
    mp.setattr(recurrent, "CHUNK_ROWS", 5)


def _wide(mp):
    """Every input wider than per-step projection takes: xp for all steps, chunked inference."""
    mp.setattr(recurrent, "PER_STEP_MAX_FEATURES", 0)
    mp.setattr(recurrent, "CHUNK_ROWS", 5)


def _run(model, case, plain: bool):
    """(first predict, second predict (stateful: from the carried state; else from what the
    first kept, as a projected table), loss, gradients)."""
    with paths.plain_paths(plain):
        model.reset_states()
        p1 = model.predict_on_batch(case.x)
        p2 = model.predict_on_batch(case.x) if case.stateful or not plain else None
        model.reset_states()
        loss, grads = model.loss_and_gradients(case.x, case.y)
    return p1, p2, loss, grads


def check_case(case: Case, monkeypatch) -> None:
    seed = case.seed % 1000       # the weights, and the dropout masks drawn in training
    m32 = rnndsl.compile(case.text, dtype="float32", seed=seed)
    weights = m32.get_weights()
    ref = rnndsl.compile(case.text, dtype="float64", seed=seed)
    ref.set_weights([w.astype(np.float64) for w in weights])
    want = _run(ref, case, plain=True)
    rng = np.random.default_rng(case.seed + 1)
    setting = rng.choice(["default", "forced", "wide"])
    with monkeypatch.context() as mp:
        if setting == "forced":
            _forced(mp)
        elif setting == "wide":
            _wide(mp)
        m64 = rnndsl.compile(case.text, dtype="float64", seed=seed)
        m64.set_weights([w.astype(np.float64) for w in weights])
        for model, tol, route in ((m64, TOL64, f"float64 {setting}"), (m32, TOL32, f"float32 {setting}")):
            got = _run(model, case, plain=False)
            for k, what in enumerate(("predict", "second predict (carried state)" if case.stateful
                                      else "second predict (what the first kept)")):
                ref_k = want[k] if case.stateful or k == 0 else want[0]
                for g, w in zip(_as_list(got[k]), _as_list(ref_k)):
                    _compare(what, g, w, tol, case, route)
            _compare("loss", got[2], want[2], tol, case, route)
            for name, g, w in zip(ref.weight_names(), got[3], want[3]):
                if w is not None:
                    _compare(f"gradient of {name}", g, w, tol * 3, case, route)
            if case.steppable and case.x[0].shape[1] > 0:
                _check_step(model, case, want[0], tol, route)


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _check_step(model, case, whole, tol, route):
    """Model.step through the sequence, from zeros, against the whole sequence's predict."""
    (x,) = case.x
    model.reset_states()
    outs = [model.step(np.ascontiguousarray(x[:, t])) for t in range(x.shape[1])]
    got = np.stack(outs, axis=1) if case.per_step_out else outs[-1]
    _compare("step() against predict", got, whole, tol, case, route + " step()")
    model.reset_states()


def _models(deep: bool) -> list[int]:
    if os.environ.get("RNNDSL_DIFF_SEED"):
        first = int(os.environ["RNNDSL_DIFF_SEED"])
        return list(range(first, first + int(os.environ.get("RNNDSL_DIFF_MODELS", 1))))
    n = int(os.environ.get("RNNDSL_DIFF_MODELS", 0)) or (DEEP_MODELS if deep else DEFAULT_MODELS)
    return list(range(n))


BATCHES = 8


@pytest.mark.parametrize("part", range(BATCHES))
def test_fast_paths_equal_the_plain_route(part, monkeypatch, request):
    """A share of the drawn models (split so that a failure shows which part, and the
    suite's progress moves)."""
    for seed in _models(request.config.getoption("--deep"))[part::BATCHES]:
        check_case(draw(seed), monkeypatch)


def test_plain_route_gradients_match_central_differences():
    """The reference itself: float64 plain gradients of drawn models against central
    differences, on a few coordinates of every weight."""
    for seed in range(0, 60, 6):
        case = draw(seed)
        if "dropout" in case.text or "batchnorm" in case.text:
            continue
        m = rnndsl.compile(case.text, dtype="float64", seed=1)
        rng = np.random.default_rng(seed)
        with paths.plain_paths():
            m.reset_states()
            _, grads = m.loss_and_gradients(case.x, case.y)
            weights = m.get_weights()
            for i, (w, g) in enumerate(zip(weights, grads)):
                if g is None:
                    continue
                for flat in rng.choice(w.size, size=min(4, w.size), replace=False):
                    idx = np.unravel_index(flat, w.shape)
                    vals = []
                    for h in (1e-6, -1e-6):
                        ws = [a.copy() for a in weights]
                        ws[i][idx] += h
                        m.set_weights(ws)
                        m.reset_states()
                        vals.append(m.loss_and_gradients(case.x, case.y)[0])
                    m.set_weights(weights)
                    fd = (vals[0] - vals[1]) / 2e-6
                    assert abs(fd - g[idx]) <= 1e-5 * (1 + abs(fd)), (seed, m.weight_names()[i], idx, fd, g[idx],
                                                                      case.text)


def test_the_draw_covers_the_fast_paths():
    """The default draw reaches what the test exists for (so that a change to draw() cannot
    quietly stop testing a path)."""
    cases = [draw(s) for s in range(DEFAULT_MODELS)]
    text = [c.text for c in cases]
    assert sum("embed" in t and "lstm(" in t for t in text) > 30
    assert sum("embed" in t and "gru(" in t for t in text) > 30         # GRU's fused step reads the rows in place
    assert sum(c.x[0].shape[1] == 1 for c in cases) > 30            # one-step sequences
    assert sum(c.x[0].shape[1] == 0 for c in cases) > 20            # zero steps
    assert sum(c.x[0].shape[0] > 9 and "embed(9" in c.text or "embed(5" in c.text or "embed(3" in c.text
               for c in cases) > 20                                  # batch > vocabulary
    for word in ("mask_zero", "go_backwards", "bidirectional", "stateful", "initial_state", "rnn(", "dropout",
                 "concat(", "add(", "batchnorm", "reset_after=false", "zero_output_for_mask"):
        assert sum(word in t for t in text) >= 3, word
    assert sum(c.steppable for c in cases) >= 10


# models the draw does not make, whose train steps hand a spent array on: attention over two
# LSTMs and a concat (bench's attn-seq2seq, small), an add of two branches (the fan-out sum)
REUSE_SPECS = [
    ("input src: int[?]\ninput tgt: int[?]\n"
     "enc = src | embed(40, 8) | lstm(16, seq, state)\n"
     "dec = tgt | embed(50, 8) | lstm(16, seq, initial_state=enc.state)\n"
     "ctx = attention(dec, enc)\noutput concat(dec, ctx) | dense(5)\n"),
    "input x: float[?, 6]\nh = x | gru(9, seq)\nr = h | simplernn(9, seq)\noutput add(h, r) | lstm(8) | dense(3)\n",
]


def _reuse_cases() -> list:
    cases = [draw(s) for s in range(0, 240, 6)]
    rng = np.random.default_rng(5)
    for k, text in enumerate(REUSE_SPECS):
        B, T = 33, 7
        if "src" in text:
            xs, y = [rng.integers(0, 40, (B, T)), rng.integers(0, 50, (B, T))], rng.integers(0, 5, (B, T))
        else:
            xs, y = [rng.normal(size=(B, T, 6))], rng.integers(0, 3, B)
        cases.append(Case(10_000 + k, text, xs, y))
    return cases


def test_train_steps_reusing_spent_arrays_equal_fresh_ones(monkeypatch):
    """Train steps whose pool hands a spent array on within the step (kernels/cpu/buffers.py,
    the tape consumed as backward walks it) against steps where nothing is ever reused (every
    request a new array), and against the pool with every array it hands out filled with NaN
    first (a kernel reading what it had not written would show): three steps of SGD, the
    second at a smaller batch where the model allows it, give the same losses and weights, to
    the last bit, in float32 and float64."""
    from rnndsl.kernels.cpu import buffers

    def poisoned(empty):
        def fill(self, shape, dtype):
            a = empty(self, shape, dtype)
            if a.dtype.kind == "f":
                a.fill(np.nan)
            return a
        return fill

    for case in _reuse_cases():
        B = case.y.shape[0]
        rows = [B, B // 2 + 1, B] if B > 2 and not case.stateful else [B] * 3
        for dtype in ("float32", "float64"):
            runs = []
            for mode in ("reuse", "poisoned", "fresh"):
                with monkeypatch.context() as mp:
                    mp.setattr(buffers, "MIN_FIT_BYTES", 0)       # these small models' arrays lend their fronts too
                    if mode == "fresh":
                        mp.setattr(buffers, "_POOL_REFS", -1)     # no array is ever spent: each request its own
                    elif mode == "poisoned":
                        mp.setattr(buffers.Pool, "empty", poisoned(buffers.Pool.empty))
                    m = rnndsl.compile(case.text, dtype=dtype, seed=case.seed % 1000)
                    m.configure(loss="sparse_categorical_crossentropy", optimizer="sgd")
                    losses = [m.train_on_batch([x[:n] for x in case.x], case.y[:n]) for n in rows]
                    runs.append((losses, m.get_weights()))
            (l1, w1) = runs[0]
            for what, (l2, w2) in zip(("poisoned", "fresh"), runs[1:]):
                where = f"against {what}: seed {case.seed} {dtype}\n{case.text}"
                assert l1 == l2, (l1, l2, where)
                for name, a, b in zip(m.weight_names(), w1, w2):
                    assert np.array_equal(a, b), (name, float(np.max(np.abs(a - b))), where)
