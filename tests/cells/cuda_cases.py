"""Custom cells on the CUDA engine against the CPU engine (run under NUMBA_ENABLE_CUDASIM=1).

Run by tests/cells/test_cells_cuda.py in a subprocess with the simulator enabled
(numba reads the variable once, at import). On a GPU machine run it directly:

    python tests/cells/cuda_cases.py            # every case, one JSON line each
    python tests/cells/cuda_cases.py mgu        # the cases whose names contain a word
    python tests/cells/cuda_cases.py --shard 1/2  # every second case, from the first

Comparison and tolerances as tests/cuda_engine/cases.py (1e-5 float32, 1e-9 float64);
tiny shapes (T = 3, B = 2, units <= 3).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np


HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]     # rnndsl and the tests' packages, run as a script

from cells.cell_texts import GRU_AFTER, INDRNN, LNC, LSTM, MGU, TWO  # noqa: E402
from cuda_engine import cases as base  # noqa: E402

ODDF = """
cell oddf(units) state(h, m) {
  a = exp(-(x @ Wa) * 0.5)
  d = hard_sigmoid(h @ Ud + bd)
  h = tanh(a / (1.5 + d * d) - linear(h) * s)
  m = sigmoid(h) - 2 * a
}
"""

X, IDS, Y, YSEQ = base.X, base.IDS, base.Y, base.YSEQ
# padding first and last: a cell's own output is zeros, then repeats the previous one
LEADING_PAD = np.array([[0, 4, 3], [1, 2, 0]])
SCCE = "sparse_categorical_crossentropy"


def _x(body, cell):
    return f"{cell}input x: float[?, 2]\noutput x | {body} | dense(3)"


def _ids(body, cell):
    return f"{cell}input x: int[?]\noutput x | embed(8, 2, mask_zero=true) | {body} | dense(3)"


CASES = {
    "mgu float32": (_x("rnn(mgu(3))", MGU), X, None, "float32"),
    "mgu float64": (_x("rnn(mgu(3))", MGU), X, None, "float64"),
    "mgu seq backwards float32": (_x("rnn(mgu(3), seq, go_backwards=true)", MGU), X, None, "float32"),
    "mgu masked zero_output float64": (_ids("rnn(mgu(2), seq, zero_output_for_mask=true)", MGU), IDS, YSEQ,
                                       "float64"),
    "mgu dropouts float32": (_x("rnn(mgu(3), dropout=0.3, recurrent_dropout=0.4)", MGU), X, None, "float32"),
    "lstm cell float32": (_x("rnn(mylstm(3))", LSTM), X, None, "float32"),
    "lstm cell float64 seq": (_x("rnn(mylstm(3), seq)", LSTM), X, None, "float64"),
    "lstm cell masked backwards float64": (_ids("rnn(mylstm(2), go_backwards=true)", LSTM), IDS, Y, "float64"),
    "gru_after cell float64": (_x("rnn(gru_after(3))", GRU_AFTER), X, None, "float64"),
    "indrnn float32": (_x("rnn(indrnn(3), seq)", INDRNN), X, None, "float32"),
    "exp hard_sigmoid div two states float64": (_x("rnn(oddf(2))", ODDF), X, None, "float64"),
    "bidirectional mgu float32": (_x("bidirectional(rnn(mgu(2), seq))", MGU), X, None, "float32"),
    "two inputs float64": (f"{TWO}input a: float[?, 2]\ninput b: float[?, 3]\noutput rnn(two(3), a, b) | dense(3)",
                           [X, base.R.normal(size=(2, 3, 3))], Y, "float64"),
    # reductions (mean, var, max, sum), the new functions and an output of its own
    "lnc reductions output float64 seq": (_x("rnn(lnc(3), seq)", LNC), X, None, "float64"),
    "lnc masked float64": (_ids("rnn(lnc(3), seq)", LNC), LEADING_PAD, YSEQ, "float64"),
    "lnc masked zero_output backwards float32": (_ids("rnn(lnc(2), zero_output_for_mask=true, go_backwards=true)",
                                                      LNC), IDS, Y, "float32"),
    "lnc dropouts float32": (_x("rnn(lnc(3), dropout=0.3, recurrent_dropout=0.4)", LNC), X, None, "float32"),
    "encoder decoder lstm cell state float64": (
        f"{LSTM}input a: float[?, 2]\ninput b: float[?, 2]\nenc = a | rnn(mylstm(2), state)\n"
        "output b | rnn(mylstm(2), seq, initial_state=enc.state) | dense(3)", [X, X[:, ::-1].copy()], YSEQ,
        "float64"),
}


ODD = """
cell odd(units) {
  q = (x * x - 0.25) @ Wq
  h = tanh(h @ U + q)
}
"""


def unsupported_case():
    """A cell the device cannot run yet is refused when the model is built, naming why."""
    import rnndsl

    try:
        rnndsl.compile(_x("rnn(odd(2))", ODD), device="cuda").predict(X)    # the engine is built lazily
    except rnndsl.DeviceError as e:
        msg = str(e)
        assert "RNN(odd)" in msg and "element-wise operations on input features" in msg, msg
        assert "device='cpu'" in msg, msg
        return 0.0, msg
    raise base.Mismatch("no DeviceError for a cell with an input used element-wise")


def generated_source_case():
    """The CUDA source of a cell: one forward and one backward kernel per phase with element-wise work."""
    import rnndsl
    from rnndsl.runtime.cuda import cells as cuda_run

    m = rnndsl.compile(_x("rnn(mgu(2))", MGU), device="cuda", dtype="float32")
    cell = next(n.opts["cell"] for n in m.graph.nodes if n.opts.get("cell") is not None)
    src = cuda_run.source(cell, "float32")
    for name in ("def fwd1(", "def fwd2(", "def bwd1(", "def bwd2(", "def handoff(", "@cuda.jit"):
        assert name in src, name
    assert "def fwd0(" not in src              # MGU's phase 0 (x @ W, hoisted) has no element-wise work
    assert "min(" not in src and "max(" not in src and "syncwarp" not in src
    # reductions: a kernel per phase with values of one per row, forward and backward, no atomics
    m = rnndsl.compile(_x("rnn(lnc(2))", LNC), device="cuda", dtype="float32")
    cell = next(n.opts["cell"] for n in m.graph.nodes if n.opts.get("cell") is not None)
    ln = cuda_run.source(cell, "float32")
    for name in ("def row1(", "def row2(", "def row3(", "def rbwd1(", "def rbwd2(", "def rbwd3(", "dOc[b, j]"):
        assert name in ln, name
    kernels = ln[ln.index("@cuda.jit"):]
    assert "min(" not in kernels and "max(" not in kernels and "atomic" not in kernels and "np." not in kernels
    return 0.0, f"{len(src.splitlines())} and {len(ln.splitlines())} lines"


def cases():
    return list(CASES) + ["unsupported cell refused", "generated source"]


def run(name):
    if name == "unsupported cell refused":
        return unsupported_case()
    if name == "generated source":
        return generated_source_case()
    text, x, y, dtype = CASES[name]
    return base.layer_case(text, x, y, SCCE, True, dtype)


def main(argv):
    shard = None
    if "--shard" in argv:
        i = argv.index("--shard")
        k, n = map(int, argv[i + 1].split("/"))
        shard = (k, n)
        argv = argv[:i] + argv[i + 2:]
    words = [a for a in argv if not a.startswith("--")]
    for pos, name in enumerate(cases()):
        if words and not any(w in name for w in words):
            continue
        if shard is not None and pos % shard[1] != shard[0] - 1:
            continue
        t0 = time.time()
        rec = {"name": name}
        try:
            worst, detail = run(name)
            rec.update(ok=True, error=worst, detail=detail)
        except Exception as e:  # noqa: BLE001 - reported per case
            rec.update(ok=False, error=None, detail=f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}")
        rec["seconds"] = round(time.time() - t0, 2)
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
