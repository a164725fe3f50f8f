"""The benchmark's bookkeeping (bench/workloads.py): issue 22's targets, the analytic FLOPs,
every spec compiling, and no framework imported there. No timing is run or asserted."""

import ast
import sys
from pathlib import Path

import numpy as np

import rnndsl

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:            # bench/ is beside the package, not installed with it
    sys.path.insert(0, str(ROOT))

from bench.workloads import BY_NAME, WORKLOADS, Target, attention_flops, rnn_flops  # noqa: E402


def _targets(name):
    return {t.metric: (t.op, t.value) for t in BY_NAME[name].targets}


def test_issue_22_targets():
    for name in ("mnist-lstm", "bi-lstm", "seq2seq", "text-lstm", "text-gru", "long", "lnlstm", "attn-seq2seq"):
        assert _targets(name) == {"train_ratio": ("<=", 0.5), "infer_ratio": ("<=", 0.67), "mem_ratio": ("<=", 1.0)}
    assert _targets("stack-gru") == {"train_ratio": ("<=", 0.5), "infer_ratio": ("<=", 0.5), "mem_ratio": ("<=", 1.0)}
    assert _targets("big-lstm") == {"train_ratio": ("<=", 0.8), "infer_ratio": ("<=", 1.0),
                                    "pct_sgemm": (">=", 95.0), "mem_ratio": ("<=", 1.0)}
    assert _targets("wide") == {"train_ratio": ("<=", 0.8), "infer_ratio": ("<=", 1.0), "mem_ratio": ("<=", 1.0)}
    assert _targets("stream-step") == {"infer_ratio": ("<=", 0.15)}


def test_target_verdicts():
    t, floor = Target("infer_ratio", "<=", 0.67), Target("pct_sgemm", ">=", 95.0)
    assert (t.met(0.67), t.met(0.6701), t.met(None)) == (True, False, None)
    assert (floor.met(95.0), floor.met(94.9)) == (True, False)


def test_flops():
    # text-gru: 3 gates, 2 x 64 x 100 x 3 x 128 x (64 + 128), plus the dense layer 2 x 64 x 128 x 10
    assert rnn_flops(64, 100, 64, 128, 3) == 943_718_400
    assert BY_NAME["text-gru"].flops == 943_718_400 + 163_840
    # attention over 20 x 20 steps of 64 features: scores and context, 2 x 64 x 400 x 128
    assert attention_flops(64, 20, 20, 64, 64) == 6_553_600
    assert BY_NAME["lnlstm"].flops == BY_NAME["text-lstm"].flops


def test_specs_compile_and_data_is_deterministic():
    for wl in WORKLOADS:
        rnndsl.compile(wl.spec, dtype="float32", seed=0)
        a, b = wl.make_data(np.random.default_rng(0)), wl.make_data(np.random.default_rng(0))
        xa, xb = (a[0] if isinstance(a[0], list) else [a[0]]), (b[0] if isinstance(b[0], list) else [b[0]])
        assert all(np.array_equal(p, q) for p, q in zip(xa, xb))


def test_workloads_module_imports_no_framework():
    tree = ast.parse((ROOT / "bench" / "workloads.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names & {"torch", "onnxruntime", "keras", "tensorflow"} == set()


def test_a_missed_inference_target_says_what_it_needs():
    """A missed infer_ratio target names the throughput that would meet it: the inference
    FLOPs in target x the best peer's time, and that over the sgemm ceiling."""
    from bench import run
    res = {"name": "mnist-lstm", "kind": "batch", "flops_infer": BY_NAME["mnist-lstm"].flops,
           "frameworks": {"rnndsl": {"infer": {"median": 1e-3}}, "ort": {"infer": {"median": 1e-3}}}}
    run.summarise(res, 200.0)
    v = [t for t in res["summary"]["targets"] if t["target"].startswith("infer_ratio")][0]
    assert v["met"] is False
    need = BY_NAME["mnist-lstm"].flops / (0.67 * 1e-3) / 1e9
    assert abs(v["needs_gflops"] - need) < 1e-9 and abs(v["needs_pct_sgemm"] - need / 2.0) < 1e-9
    assert f"needs {need:.0f} GFLOP/s" in run._verdict_lines({"mnist-lstm": res})[1]
