#!/usr/bin/env python
"""Benchmark rnndsl against PyTorch CPU, ONNX Runtime and Keras (each when importable), in one process.

    python bench/run.py                 full run (~10 min on 2 cores), table + bench/results.json
    python bench/run.py --quick         smoke run (few steps)
    python bench/run.py --only seq2seq,bi-lstm --steps 20
    python bench/run.py --profile       where rnndsl's time goes (bench/profile.json)
    python bench/run.py --scaling       rnndsl time and memory against sequence length and
                                        hidden size (bench/scaling.json)

Every framework runs float32 on --threads threads (default 2): the OpenMP,
OpenBLAS, MKL and numba thread variables are set before NumPy is imported, and
torch.set_num_threads is called (ONNX Runtime: intra_op_num_threads). A timing is the median of --steps calls after
warm-up calls (the first of which includes numba compilation). See
bench/README.md for how to read the table and for the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "RNNDSL_NUM_THREADS")
PEERS = ("torch", "ort", "keras")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few steps: a smoke run (under 2 minutes)")
    p.add_argument("--only", metavar="NAMES", help="comma-separated workload names (default: all)")
    p.add_argument("--steps", type=int, metavar="N",
                   help="timed steps per measurement (default 10 for big-lstm, long and wide, else 20; 3 with --quick; "
                        "the stream step times 200*N single steps)")
    p.add_argument("--warmup", type=int, metavar="N", help="untimed calls first (default 3; 1 with --quick)")
    p.add_argument("--json", metavar="PATH", help="results file (default bench/results.json, "
                   "bench/profile.json with --profile, bench/scaling.json with --scaling)")
    p.add_argument("--retries", type=int, metavar="N",
                   help="re-measure a workload phase up to N times while its timings are noisy "
                        "(interquartile spread above 25%%; default 2, 0 with --quick)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="before each workload, wait up to S seconds for other processes to leave the CPU "
                        "(under 15%% busy over 2 s); for a shared machine (default 0: no wait)")
    p.add_argument("--threads", type=int, default=2, help="threads for every framework (default 2)")
    p.add_argument("--peers", default=",".join(PEERS),
                   help="peer frameworks to try, comma-separated, or 'none' (default: torch,ort,keras; ort is "
                        "inference only, the PyTorch models exported to ONNX)")
    p.add_argument("--profile", action="store_true",
                   help="instead of the comparison: break rnndsl's train and infer steps down")
    p.add_argument("--scaling", action="store_true",
                   help="instead of the comparison: rnndsl time and peak memory against sequence length "
                        "and hidden size (one subprocess per point)")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                   help="peak memory of a train step, rnndsl and PyTorch, one subprocess each per workload "
                        "(bench/memory.py; default on, --no-memory skips it)")
    p.add_argument("--point", help=argparse.SUPPRESS)     # internal: one scaling point (subprocess)
    p.add_argument("--mem-point", help=argparse.SUPPRESS)  # internal: one memory point (subprocess)
    args = p.parse_args(argv)
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    if args.steps is not None and args.steps < 1:
        p.error("--steps must be at least 1")
    if args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def set_threads(n: int) -> None:
    """Before NumPy, numba or torch load: afterwards their pools are already sized."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    late = [m for m in ("numpy", "numba", "torch") if m in sys.modules]
    if late:
        print(f"warning: {', '.join(late)} imported before the thread settings; "
              "run this file as a script (python bench/run.py)", file=sys.stderr)


LSTM_CELL = """cell lstm_cell(units) state(h, c) init(bf = ones) {
  i = sigmoid(x @ Wi + h @ Ui + bi)
  f = sigmoid(x @ Wf + h @ Uf + bf)
  g = tanh(x @ Wc + h @ Uc + bc)
  o = sigmoid(x @ Wo + h @ Uo + bo)
  c = f * c + i * g
  h = o * tanh(c)
}
"""


def custom_cell_section(wls, args) -> dict:
    """Issue 7's figure: text-lstm with the LSTM declared as a custom cell against the built-in."""
    import numpy as np

    from bench import peers
    from bench.timing import measure_interleaved
    from bench.workloads import BY_NAME, Workload

    if not any(w.name == "text-lstm" for w in wls):
        return {}
    base = BY_NAME["text-lstm"]
    cell = Workload("text-lstm-cell", base.about + " (LSTM declared as a custom cell)",
                    LSTM_CELL + base.spec.replace("lstm(128)", "rnn(lstm_cell(128))"),
                    base.batch, base.make_data, base.flops)
    warmup, steps = _settings(args, base)
    x, y = base.make_data(np.random.default_rng(0))
    out = {}
    try:
        runners = {"built-in": peers.rnndsl_runner(base, x, y), "custom cell": peers.rnndsl_runner(cell, x, y)}
        for phase in ("train", "infer"):
            got = measure_interleaved([(k, getattr(r, phase), lambda: None, contextlib.nullcontext)
                                       for k, r in runners.items()], warmup, steps, 5)
            out[phase] = {k: v["median"] for k, v in got.items()}
            out[phase]["ratio"] = out[phase]["custom cell"] / out[phase]["built-in"]
    except Exception as e:                          # noqa: BLE001 - recorded, the run goes on
        print(f"\ncustom-cell LSTM: error: {_error_text(e)}")
        return {"error": _error_text(e)}
    tr, inf = out["train"], out["infer"]
    verdict = "met" if tr["ratio"] <= 1.5 else "MISSED"
    print(f"\ncustom-cell LSTM on text-lstm (issue 7): train {tr['custom cell'] * 1e3:.1f} ms vs built-in "
          f"{tr['built-in'] * 1e3:.1f} ms = {tr['ratio']:.2f}x (target <= 1.5x: {verdict}); "
          f"infer {inf['custom cell'] * 1e3:.2f} ms vs {inf['built-in'] * 1e3:.2f} ms = {inf['ratio']:.2f}x")
    return out


def gpu_section(wls, args) -> dict:
    """rnndsl's CUDA engine on the same workloads when a real GPU is visible; else say why not."""
    import os

    import numpy as np

    from bench import peers
    from bench.timing import measure
    from rnndsl.runtime import cuda_available

    if os.environ.get("NUMBA_ENABLE_CUDASIM"):
        reason = "NUMBA_ENABLE_CUDASIM is set: the simulator is for tests, not timings"
    elif not cuda_available():
        reason = "no CUDA GPU visible"
    else:
        reason = None
    if reason:
        print(f"\nGPU path: skipped ({reason}).")
        return {"skipped": reason}
    print("\nGPU path (rnndsl device=\"cuda\", float32):")
    rows, out = [], {}
    for wl in wls:
        if wl.kind == "stream":
            continue
        warmup, steps = _settings(args, wl)
        x, y = wl.make_data(np.random.default_rng(0))
        try:
            r = peers.rnndsl_runner(wl, x, y, device="cuda")
            tr, inf = measure(r.train, warmup, steps), measure(r.infer, warmup, steps)
            out[wl.name] = {"train": tr, "infer": inf}
            rows.append((wl.name, f"{tr['median'] * 1e3:.3g}", f"{inf['median'] * 1e3:.3g}"))
        except Exception as e:                      # noqa: BLE001 - recorded, the run goes on
            out[wl.name] = {"error": _error_text(e)}
            rows.append((wl.name, "error", _error_text(e)[:60]))
    print(markdown_table(("workload", "rnndsl cuda train ms", "rnndsl cuda infer ms"), rows))
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if args.point:
        from bench import scaling
        return scaling.run_point(args.point)
    if args.mem_point:
        from bench import memory
        return memory.run_point(args.mem_point)
    if args.scaling:
        from bench import scaling
        return scaling.main(args)
    if args.profile:
        from bench import breakdown
        return breakdown.main(args)
    return compare(args)


# --- the comparison ------------------------------------------------------------------------

def _peer_modules(wanted: str, threads: int) -> dict:
    from bench import peers

    names = [] if wanted.strip() == "none" else [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise SystemExit(f"unknown peer(s) {unknown}; choose from {', '.join(PEERS)} or none")
    mods = {}
    if "torch" in names:
        torch = peers.torch_module()
        if torch is not None:
            torch.set_num_threads(threads)
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:
                pass
            mods["torch"] = torch
    if "ort" in names:
        ort = peers.ort_module()
        if ort is not None:
            mods["ort"] = ort           # (onnxruntime, torch): torch is its exporter
    if "keras" in names:
        keras = peers.keras_module()
        if keras is not None:
            mods["keras"] = keras
    return mods


def _settings(args, wl) -> tuple[int, int]:
    """(warm-up calls, timed calls) for a workload."""
    if wl.kind == "stream":
        steps = 200 * (args.steps or (2 if args.quick else 10))
        warmup = args.warmup if args.warmup is not None else (20 if args.quick else 200)
        return warmup, steps
    default = 3 if args.quick else (10 if wl.name in LONG_STEPS else 20)
    return (args.warmup if args.warmup is not None else (1 if args.quick else 3)), (args.steps or default)


LONG_STEPS = ("big-lstm", "long", "wide")     # 10 timed steps by default: the slow ones

NOISY = 1.25     # interquartile ratio p75 / p25 above which a timing is flagged (and re-measured)


def is_noisy(st: dict) -> bool:
    return st["p75"] > NOISY * st["p25"]


def _error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


def run_workload(wl, peer_mods: dict, args) -> dict:
    import numpy as np

    from bench import peers
    from bench.timing import BackgroundLoad, measure, measure_interleaved, wait_quiet

    warmup, steps = _settings(args, wl)
    x, y = wl.make_data(np.random.default_rng(0))
    res = {"about": wl.about, "spec": wl.spec, "batch": wl.batch, "kind": wl.kind, "flops_infer": wl.flops,
           "warmup": warmup, "steps": steps, "frameworks": {}}
    runners = []
    builders = [("rnndsl", lambda: peers.rnndsl_runner(wl, x, y))]
    if "torch" in peer_mods:
        builders.append(("torch", lambda: peers.torch_runner(peer_mods["torch"], wl, x, y)))
    if "ort" in peer_mods:
        builders.append(("ort", lambda: peers.ort_runner(*peer_mods["ort"], wl, x, y, args.threads)))
    if "keras" in peer_mods:
        builders.append(("keras", lambda: peers.keras_runner(peer_mods["keras"], wl, x, y)))
    for name, build in builders:
        entry = res["frameworks"].setdefault(name, {})
        try:
            r = build()
        except NotImplementedError as e:            # a peer with no equivalent of this workload
            entry["skipped"] = str(e)
            continue
        except Exception as e:                      # noqa: BLE001 - recorded, the run goes on
            entry["error"] = "setup: " + _error_text(e)
            continue
        entry["notes"] = list(r.notes)
        runners.append(r)
    if wl.kind == "stream" and not any(r.framework == "rnndsl" and r.infer for r in runners):
        try:                                        # a reference only: not Model.step
            fb = peers.rnndsl_stream_fallback(wl, x)
            st = measure(fb.infer, warmup, max(50, steps // 10))
            res["rnndsl_predict_on_batch_1_step"] = st
        except Exception as e:                      # noqa: BLE001
            res["rnndsl_predict_on_batch_1_step"] = {"error": _error_text(e)}
    phases = ("infer",) if wl.kind == "stream" else ("train", "infer")
    load = [0.0, 0.0]           # core-seconds other processes used / available while measuring
    for phase in phases:
        entries = []
        for r in runners:
            fn = getattr(r, phase)
            if fn is None:
                res["frameworks"][r.framework][phase] = None
                continue
            before = r.train_mode if phase == "train" else r.infer_mode
            ctx = r.infer_context if phase == "infer" else contextlib.nullcontext
            entries.append((r.framework, fn, before, ctx))
        chunk = 200 if wl.kind == "stream" else 5
        best, tries = {}, 0
        while True:                     # a noisy block (the machine is shared) is measured again
            t0 = time.perf_counter()
            with BackgroundLoad() as bg:
                got = measure_interleaved(entries, warmup if tries == 0 else 1, steps, chunk)
            if bg.others is not None:
                load[0] += bg.others
                load[1] += bg.capacity
            tries += 1
            for key, st in got.items():
                old = best.get(key)
                if old is None or "error" in old or ("error" not in st and st["median"] < old["median"]):
                    best[key] = st
            noisy = [k for k, st in best.items() if "error" not in st and is_noisy(st)]
            if not noisy or tries > args.retries or time.perf_counter() - t0 > 45:
                break
            if args.wait_quiet > 0:
                wait_quiet(args.wait_quiet)
        for key, st in best.items():
            st["attempts"] = tries
            entry = res["frameworks"][key]
            if "error" in st:
                entry[phase] = None
                entry.setdefault("errors", {})[phase] = st["error"]
            else:
                entry[phase] = st
    res["background_cpu_share"] = load[0] / load[1] if load[1] else None
    return res


def summarise(res: dict, ceiling: float) -> None:
    """Adds best peer, ratios, GFLOP/s, % of the sgemm ceiling and target verdicts to res."""
    from bench.workloads import BY_NAME

    fw = res["frameworks"]
    own = fw.get("rnndsl", {})
    summary = {}
    for phase in ("train", "infer"):
        mine = (own.get(phase) or {}).get("median")
        best = None
        for name, entry in fw.items():
            if name == "rnndsl" or not entry.get(phase):
                continue
            t = entry[phase]["median"]
            if best is None or t < best[1]:
                best = (name, t)
        summary[f"{phase}_s"] = mine
        summary[f"best_peer_{phase}"] = best[0] if best else None
        summary[f"best_peer_{phase}_s"] = best[1] if best else None
        summary[f"{phase}_ratio"] = mine / best[1] if (mine and best) else None
    mem = res.get("memory") or {}
    mine, theirs = (mem.get(fw, {}).get("peak_mb") for fw in ("rnndsl", "torch"))
    summary["mem_rnndsl_mb"], summary["mem_torch_mb"] = mine, theirs
    summary["mem_ratio"] = mine / theirs if (mine is not None and theirs) else None
    t = summary["infer_s"]
    summary["gflops"] = res["flops_infer"] / t / 1e9 if t else None
    summary["pct_sgemm"] = 100.0 * summary["gflops"] / ceiling if summary["gflops"] else None
    summary["infer_us"] = t * 1e6 if t else None
    verdicts = []
    for target in BY_NAME[res["name"]].targets:
        value = summary.get(target.metric)
        verdict = {"target": target.describe(), "value": value, "met": target.met(value)}
        peer_s = summary["best_peer_infer_s"]
        if target.metric == "infer_ratio" and verdict["met"] is False and peer_s and res["kind"] == "batch":
            # the throughput the target asks for: the inference FLOPs in target x the best peer's time
            need = res["flops_infer"] / (target.value * peer_s) / 1e9
            verdict["needs_gflops"], verdict["needs_pct_sgemm"] = need, 100.0 * need / ceiling
        verdicts.append(verdict)
    summary["targets"] = verdicts
    res["summary"] = summary


HEADER = ("workload", "rnndsl train ms", "best peer train ms", "ratio", "rnndsl infer ms",
          "best peer infer ms", "ratio", "GFLOP/s", "% of sgemm ceiling", "train MB rnndsl / torch", "mem ratio")


def table_rows(results: dict) -> list[tuple]:
    from bench.timing import fmt_time

    rows = []
    for name, res in results.items():
        s = res.get("summary")
        if s is None:
            rows.append((name, "error") + ("",) * (len(HEADER) - 2))
            continue
        unit = "us" if res["kind"] == "stream" else "ms"

        def cell(t, fw="rnndsl", phase=None):
            st = (res["frameworks"].get(fw) or {}).get(phase) if phase else None
            return fmt_time(t, unit) + ("*" if st and is_noisy(st) else "")

        def peer(phase):
            t = s[f"best_peer_{phase}_s"]
            fw = s[f"best_peer_{phase}"]
            return "n/a" if t is None else f"{cell(t, fw, phase)} ({fw})"

        def ratio(phase):
            r = s[f"{phase}_ratio"]
            return "n/a" if r is None else f"{r:.2f}"

        train_cells = (("—", "—", "—") if res["kind"] == "stream"
                       else (cell(s["train_s"], phase="train"), peer("train"), ratio("train")))
        def mb(v):
            return "n/a" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.1f}")

        mem = (("—", "—") if res["kind"] == "stream" or "memory" not in res
               else (f"{mb(s['mem_rnndsl_mb'])} / {mb(s['mem_torch_mb'])}",
                     "n/a" if s["mem_ratio"] is None else f"{s['mem_ratio']:.2f}"))
        rows.append((name, *train_cells, cell(s["infer_s"], phase="infer"), peer("infer"), ratio("infer"),
                     "n/a" if s["gflops"] is None else f"{s['gflops']:.1f}",
                     "n/a" if s["pct_sgemm"] is None else f"{s['pct_sgemm']:.1f}", *mem))
    return rows


def markdown_table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"   # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def compare(args) -> int:
    import json

    from bench import peers
    from bench.timing import load_average, machine_info, sgemm_ceiling, wait_quiet
    from bench.workloads import select

    wls = select(args.only)
    t_start = time.perf_counter()
    out_path = Path(args.json) if args.json else HERE / "results.json"
    peer_mods = _peer_modules(args.peers, args.threads)
    info = machine_info(args.threads)
    info["rnndsl"] = peers.rnndsl_version()
    if "torch" in peer_mods:
        info["torch"] = peer_mods["torch"].__version__
    if "ort" in peer_mods:
        info["onnxruntime"] = peers.ort_version(peer_mods["ort"][0])
    if "keras" in peer_mods:
        info["keras"] = peers.keras_version(peer_mods["keras"])
    load = info["load_average_at_start"]
    print(f"rnndsl {info['rnndsl']} | numpy {info['numpy']} | numba {info['numba']} | "
          + (f"torch {info['torch']} | " if "torch" in info else "torch not importable | ")
          + (f"onnxruntime {info['onnxruntime']} | " if "onnxruntime" in info else "onnxruntime not importable | ")
          + (f"keras {info['keras']}" if "keras" in info else "keras not importable"))
    print(f"{info['cpu']}, {info['cores']} cores, {args.threads} threads, float32"
          + (f", load average {load[0]:.2f}" if load else ""))
    if load and load[0] > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is busy (load average above half the cores): timings will be noisy",
              file=sys.stderr)
    if not peer_mods:
        print("no peer framework importable (or --peers none): rnndsl alone, no ratios")
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    ceiling = sgemm_ceiling(threads=args.threads)
    print(f"sgemm ceiling: {ceiling['gflops_best']:.1f} GFLOP/s (NumPy float32 2048x2048 matmul, best of "
          f"20; median {ceiling['gflops']:.1f}); measured again at the end", flush=True)
    results = {}
    for wl in wls:
        if args.wait_quiet > 0:
            wait_quiet(args.wait_quiet)
        t0 = time.perf_counter()
        res = run_workload(wl, peer_mods, args)
        share = res["background_cpu_share"]
        res["name"] = wl.name
        summarise(res, ceiling["gflops_best"])
        results[wl.name] = res
        errors = [f"{fw}: {e.get('error') or e.get('errors')}" for fw, e in res["frameworks"].items()
                  if e.get("error") or e.get("errors")]
        busy = "" if share is None else f", other processes used {100 * share:.0f}% of the CPU while it was timed"
        print(f"  {wl.name:<12} done in {time.perf_counter() - t0:5.1f}s{busy}"
              + (f"  (errors: {'; '.join(errors)})" if errors else ""), flush=True)
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    again = sgemm_ceiling(threads=args.threads)
    if again["gflops_best"] > ceiling["gflops_best"]:        # the higher peak is the ceiling
        ceiling = {**again, "first": ceiling}
    else:
        ceiling["again"] = again
    print(f"sgemm ceiling used: {ceiling['gflops_best']:.1f} GFLOP/s")
    if args.memory:             # after every timing: the subprocesses would disturb them
        from bench import memory

        frameworks = ["rnndsl"] + (["torch"] if "torch" in peer_mods else [])
        print(f"peak memory of a train step ({', '.join(frameworks)}; one subprocess each):", flush=True)
        for name, got in memory.measure(wls, frameworks, args.threads).items():
            results[name]["memory"] = got
    for res in results.values():
        summarise(res, ceiling["gflops_best"])
    print()
    print(markdown_table(HEADER, table_rows(results)))
    print("\nratio = rnndsl time / best peer time (< 1: rnndsl is faster); GFLOP/s: rnndsl inference;"
          " stream-step in µs per step")
    if args.memory:
        print("train MB: peak resident memory of one train step of a fresh model over the resident size "
              "before it (10^6 bytes; bench/memory.py); mem ratio = rnndsl / torch")
    if any(is_noisy(e[ph]) for r in results.values() for e in r["frameworks"].values()
           for ph in ("train", "infer") if e.get(ph)):
        print("* noisy: the middle half of the steps spread over more than 25% (p75 > 1.25 p25) even after "
              "re-measuring; results.json has min and quartiles")
    busy = [f"{n} {100 * r['background_cpu_share']:.0f}%" for n, r in results.items()
            if (r.get("background_cpu_share") or 0) > 0.1]
    if busy:
        print("warning: other processes were using the CPU during: " + ", ".join(busy)
              + "; rerun on a quiet machine for trustworthy ratios")
    notes = _notes(results)
    if notes:
        print("\n" + "\n".join(notes))
    floor = stream_floor_section(results)
    verdicts = _verdict_lines(results)
    print("\ntargets (issue 22):\n" + "\n".join(verdicts))
    cell = custom_cell_section(wls, args)
    gpu = gpu_section(wls, args)
    info["load_average_at_end"] = load_average()
    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "machine": info,
        "sgemm": ceiling,
        "peers": sorted(peer_mods),
        "quick": bool(args.quick),
        "workloads": results,
        "table": {"header": list(HEADER), "rows": [list(r) for r in table_rows(results)]},
        "wall_s": time.perf_counter() - t_start,
        "custom_cell_lstm": cell,
        "stream_floor": floor,
        "gpu": gpu,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"\nresults: {out_path} ({doc['wall_s']:.0f}s)")
    return 0


def stream_floor_section(results: dict) -> dict:
    """stream-step's bandwidth floor (bench/bandwidth.py) beside its measured step."""
    res = results.get("stream-step")
    if not res or not res.get("summary") or not res["summary"].get("infer_s"):
        return {}
    from bench.bandwidth import stream_floor

    f = stream_floor(res["summary"]["infer_s"])
    print(f"\nstream-step floor: weights {f['weight_bytes']:,} bytes read once a step at {f['read_gb_s']:.0f} GB/s "
          f"(one core, a warm buffer that size) = {f['floor_us']:.2f} µs; measured step {f['step_us']:.2f} µs "
          f"= {f['step_over_floor']:.2f}x the floor")
    return f


def _notes(results: dict) -> list[str]:
    from bench.timing import fmt_time

    lines = []
    for name, res in results.items():
        own = res["frameworks"].get("rnndsl", {})
        for n in own.get("notes", []):
            if "n/a" in n or "no train_on_batch" in n:
                lines.append(f"note: {name}: {n}")
        ref = res.get("rnndsl_predict_on_batch_1_step")
        if ref:
            lines.append(f"note: {name}: for reference, rnndsl predict_on_batch of a 1-step sequence through "
                         "the stateful model takes "
                         + (fmt_time(ref["median"], "us") if "median" in ref else ref.get("error", "?")))
        for fw, e in res["frameworks"].items():
            if e.get("skipped"):
                lines.append(f"note: {name}: no {fw} peer: {e['skipped']}")
            if e.get("error"):
                lines.append(f"error: {name}: {fw}: {e['error']}")
            for phase, msg in (e.get("errors") or {}).items():
                lines.append(f"error: {name}: {fw} {phase}: {msg}")
        for fw, m in (res.get("memory") or {}).items():
            if "error" in m:
                lines.append(f"error: {name}: {fw} memory: {m['error']}")
    return lines


def _verdict_lines(results: dict) -> list[str]:
    lines = []
    for name, res in results.items():
        for v in res["summary"]["targets"]:
            value = v["value"]
            shown = "n/a" if value is None else f"{value:.2f}"
            mark = {True: "met", False: "MISSED", None: "n/a"}[v["met"]]
            need = (f"  (needs {v['needs_gflops']:.0f} GFLOP/s, {v['needs_pct_sgemm']:.0f}% of the sgemm ceiling)"
                    if "needs_gflops" in v else "")
            lines.append(f"  {name:<12} {v['target']:<20} {shown:>8}  {mark}{need}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
