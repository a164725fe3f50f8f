"""Command line: python -m rnndsl {run,check,summary,graph,cell,decode,plot,examples,warmup,convert} ...

Exit status: 0 ok, 1 a bad spec (or data, or checkpoint), 2 bad usage.
No Python traceback reaches the user: rnndsl errors print their message,
anything unexpected prints one line asking for a bug report.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import RnnError

EXIT_SPEC, EXIT_USAGE = 1, 2
EXIT_PIPE = 141            # 128 + SIGPIPE: the output's reader closed the pipe
DEFAULT_SPEC = "digits.rnn"


class UsageError(Exception):
    pass


def _whole(least: int):
    """argparse type: a whole number >= least (argparse reports anything else as usage, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
        return value
    parse.__name__ = f"whole number >= {least}"
    return parse


def examples_dir() -> Path:
    """Shipped examples: inside the installed package, else the source tree."""
    packaged = Path(__file__).resolve().parent / "examples"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "examples"


def _spec_path(arg: str | None) -> Path:
    path = Path(arg) if arg else examples_dir() / DEFAULT_SPEC
    if not path.is_file():
        raise UsageError(f"no such spec file: {path}")
    return path


def _load(arg):
    from . import load

    return load(_spec_path(arg))


def _names(names: list[str], most: int = 10) -> str:
    """Names for a one-line report: each clipped, at most `most` of them."""
    from .errors import clip

    shown = ", ".join(clip(n) for n in names[:most])
    return shown + (f" and {len(names) - most:,} more" if len(names) > most else "")


def cmd_check(args) -> int:
    model = _load(args.spec)
    g = model.graph
    print(f"{model.graph.file}: ok ({len(g.layers)} layers, {g.count_params():,} params, "
          f"inputs: {_names(model.input_names)}; outputs: {_names(model.output_names)})")
    return 0


def cmd_summary(args) -> int:
    _load(args.spec).summary()
    return 0


def cmd_graph(args) -> int:
    dot = _load(args.spec).to_dot()
    if not args.output:
        print(dot)
        return 0
    out = Path(args.output)
    fmt = out.suffix.lstrip(".") or "svg"
    if fmt == "dot":
        out.write_text(dot + "\n")
        return 0
    exe = shutil.which("dot")
    if exe is None:
        print(f"rnndsl: cannot write {out}: Graphviz's `dot` is not installed "
              "(apt-get install graphviz); without -o the DOT text goes to stdout", file=sys.stderr)
        return EXIT_USAGE
    proc = subprocess.run([exe, f"-T{fmt}", "-o", str(out)], input=dot, text=True, capture_output=True)
    if proc.returncode != 0:
        print(f"rnndsl: dot failed: {proc.stderr.strip()}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {out}")
    return 0


def cmd_cell(args) -> int:
    from .cells import compiler
    from .layers.cells import define_cells
    from .errors import DiagnosticSink, did_you_mean
    from .lang.parser import parse, read_spec

    path = _spec_path(args.spec)
    try:
        text = read_spec(path)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise RnnError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    spec = parse(text, str(path))
    sink = DiagnosticSink(text, str(path))
    cells = define_cells(spec, sink)
    sink.raise_if_any()
    if not cells:
        raise UsageError(f"{path} defines no cell (`cell NAME(units) {{ ... }}`)")
    names = list(cells)
    if args.name:
        if args.name not in cells:
            hint = did_you_mean(args.name, cells)
            raise UsageError(f"{path} has no cell {args.name!r}" + (f"; {hint}" if hint else
                             f" (cells: {', '.join(cells)})"))
        names = [args.name]
    for i, name in enumerate(names):
        if i:
            print()
        if getattr(args, "cuda", False):
            from .cells.cuda_codegen import generate, unsupported
            why = unsupported(cells[name])
            print(f"# {why}: no CUDA kernels" if why else generate(cells[name], "float32"), end="" if not why else "\n")
            continue
        print(compiler.source(cells[name]) if args.show else compiler.describe(cells[name]))
    return 0


def _writable(option: str, value: str | None) -> Path | None:
    """The path of a file option, refused as usage when it cannot be written (checked first,
    so that a bad path is reported before the work and not after it)."""
    from .train.checkpoint import unwritable

    if value is None:
        return None
    if not value:
        raise UsageError(f"{option} needs a file path")
    path = Path(value)
    why = unwritable(path)
    if why:
        raise UsageError(f"cannot write {option} {path}: {why}")
    return path


def _say_if_compiling(stream=sys.stderr) -> None:
    """One line before the first run goes quiet compiling: what and where it is kept."""
    from . import kernels  # noqa: F401 - places the compiled code's cache first
    from .caches import compiled_code_folder, nothing_compiled_yet

    if nothing_compiled_yet():
        stream.write(f"rnndsl: compiling kernels for the first run (once; kept in {compiled_code_folder()})\n")
        stream.flush()


def _inside_package(path: Path) -> bool:
    """The file is part of the installed rnndsl (a shipped example)."""
    package = Path(__file__).resolve().parent
    return package in path.resolve().parents


def cmd_run(args) -> int:
    from .app.runner import default_checkpoint, forecast_checkpoint, predict_checkpoint, train_spec

    path = _spec_path(args.spec)
    if path.suffix == ".npz":
        if args.log:
            raise UsageError("--log goes with training a spec, not with predicting from a checkpoint")
        if args.forecast:
            if not args.input:
                raise UsageError("forecasting with a checkpoint needs --input series.csv (or .npz/.npy)")
            inp = Path(args.input)
            if not inp.is_file():
                raise UsageError(f"no such input file: {inp}")
            forecast_checkpoint(path, inp, args.forecast, _writable("--output", args.output), device=args.device)
            return 0
        if args.text is not None and args.input:
            raise UsageError("give the texts to predict as --text or as --input FILE, not both")
        if not args.input and args.text is None:
            raise UsageError("predicting with a checkpoint needs --input FILE (an .npz/.npy of arrays, or a text "
                             "file of one text per line) or --text \"a sentence\"")
        inp = Path(args.input) if args.input else None
        if inp is not None and not inp.is_file():
            raise UsageError(f"no such input file: {inp}")
        predict_checkpoint(path, inp, _writable("--output", args.output), device=args.device, texts=args.text,
                           as_json=args.json)
        return 0
    if args.input or args.output or args.text is not None or args.json:
        raise UsageError("--input and --output go with a checkpoint (.npz) to predict with, not a spec (as do "
                         "--text and --json)")
    if args.forecast:
        raise UsageError("--forecast goes with a checkpoint (.npz), not a spec: train with `run SPEC`, then "
                         "`run SPEC.ckpt.npz --forecast N --input series.csv`")
    log = _writable("--log", args.log)
    out = args.out
    if out is None and _inside_package(path):
        out = str(Path.cwd() / default_checkpoint(path).name)     # never into the installation
    _writable("--out", out)
    if not args.quiet:
        _say_if_compiling()
    try:
        train_spec(path, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, quiet=args.quiet,
                   out=out, device=args.device, log=log, resume=args.resume)
    except BaseException as e:
        from .distributed import abort

        abort(e)            # under mpiexec: end every rank now, or the others wait forever in an Allreduce
        if isinstance(e, KeyboardInterrupt):
            return 130
        raise
    return 0


def cmd_decode(args) -> int:
    from .app.decode import decode_checkpoint

    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        raise UsageError(f"no such checkpoint: {ckpt}")
    if (args.tokens is None) == (args.input is None):
        raise UsageError("give the sequences to start from: --tokens \"3 1 4\" or --input FILE")
    if args.input is not None and not Path(args.input).is_file():
        raise UsageError(f"no such input file: {args.input}")
    decode_checkpoint(ckpt, args.tokens, Path(args.input) if args.input else None, device=args.device,
                      as_json=args.json, start=args.start, end=args.end, max_len=args.max_len,
                      method=args.method, beam_width=args.beam_width, temperature=args.temperature,
                      seed=args.seed)
    return 0


def cmd_plot(args) -> int:
    """Draw a training history (run --log's CSV) per epoch into a picture."""
    from .app.plot import PlotUnavailable, plot_history

    src = Path(args.history)
    if not src.is_file():
        raise UsageError(f"no such history file: {src}")
    out = _writable("-o", args.output) if args.output else src.with_suffix(".png")
    try:
        plot_history(src, out)
    except PlotUnavailable as e:
        raise UsageError(str(e)) from None
    print(f"wrote {out}")
    return 0


def cmd_examples(args) -> int:
    """List the shipped examples, or copy one into the current folder."""
    shipped = {p.stem: p for p in sorted(examples_dir().glob("*.rnn"))}
    if not args.name:
        width = max(map(len, shipped))
        for name, p in shipped.items():
            first = next((line[1:].strip() for line in p.read_text(encoding="utf-8").splitlines()
                          if line.startswith("#")), "")
            print(f"{name.ljust(width)}  {first}")
        print("\ncopy one here with: python -m rnndsl examples NAME")
        return 0
    name = args.name.removesuffix(".rnn")
    if name not in shipped:
        from .errors import did_you_mean

        raise UsageError(f"no shipped example {args.name!r}; " + (did_you_mean(name, shipped) or
                                                                  f"they are: {', '.join(shipped)}"))
    target = Path.cwd() / shipped[name].name
    if target.exists():
        raise UsageError(f"{target} exists already; remove it or copy the example elsewhere")
    data = _shipped_data_file(shipped[name])
    if data is not None and (Path.cwd() / data).exists():
        raise UsageError(f"{Path.cwd() / data} exists already; remove it or copy the example elsewhere")
    shutil.copyfile(shipped[name], target)
    if data is not None:
        (Path.cwd() / data).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(examples_dir() / data, Path.cwd() / data)
        print(f"wrote {Path.cwd() / data}, its data")
    print(f"wrote {target}; train it with: python -m rnndsl run {target.name}")
    return 0


def _shipped_data_file(spec: Path) -> Path | None:
    """The data file a shipped example's train section names beside it (e.g. data/demand.csv),
    to be copied with it; None when it names none (a built-in data set)."""
    from . import load

    path = (load(spec).graph.train.get("data") or {}).get("path")
    if not path or Path(path).is_absolute() or ".." in Path(path).parts:
        return None
    return Path(path) if (examples_dir() / path).is_file() else None


def cmd_warmup(args) -> int:
    """Compile the kernels a spec uses (forward, backward, inference), so that its first run
    does not wait for them."""
    import time

    from .app.warmup import warm_up

    path = _spec_path(args.spec)
    _say_if_compiling(sys.stdout)
    t = time.perf_counter()
    warm_up(path)
    print(f"{path.name}: kernels ready in {time.perf_counter() - t:.1f} s")
    return 0


def cmd_convert(args) -> int:
    """A model file to another format, by the suffixes: .keras -> .rnn (the spec, with the
    weights beside it as .npz), .rnn or .npz -> .keras."""
    src, dst = Path(args.source), Path(args.target)
    if not src.is_file():
        raise UsageError(f"no such file: {src}")
    into = dst.suffix.lower()
    if into not in CONVERTERS:
        raise UsageError(f"convert writes {', '.join(CONVERTERS)} files, not {dst.name!r}")
    return CONVERTERS[into](src, dst)


def _to_rnn(src: Path, dst: Path) -> int:
    if src.suffix.lower() != ".keras":
        raise UsageError(f"convert to .rnn reads a Keras 3 .keras file, not {src.name!r}")
    from .interop.keras import keras_to_spec
    from .saving import load_model

    text = keras_to_spec(src)
    model = load_model(src)
    weights = dst.with_suffix(".npz")
    _write_text(dst, text)
    model.save(weights)
    print(f"{dst}: {len(model.graph.layers)} layers, {model.count_params():,} params; weights in {weights} "
          f"(rnndsl.load_model({str(weights)!r}))")
    return 0


def _to_keras(src: Path, dst: Path) -> int:
    from . import load
    from .saving import load_model

    model = load_model(src) if src.suffix.lower() in (".npz", ".keras") else load(src)
    model.save(dst)
    print(f"{dst}: {len(model.graph.layers)} layers, {model.count_params():,} params (keras.saving.load_model)")
    return 0


def _to_onnx(src: Path, dst: Path) -> int:
    from . import load
    from .interop.onnx import export_onnx
    from .saving import load_model

    _writable("output", str(dst))
    model = load_model(src) if src.suffix.lower() in (".npz", ".keras") else load(src)
    export_onnx(model, dst)
    print(f"wrote {dst}")
    return 0


CONVERTERS = {".rnn": _to_rnn, ".keras": _to_keras, ".onnx": _to_onnx}


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnndsl", description="Recurrent networks from a .rnn spec.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    spec_help = f"the .rnn file (default: the shipped example {DEFAULT_SPEC})"

    c = sub.add_parser("check", help="parse and check a spec: shapes, states, names",
                       description="Parse a spec and check shapes, state edges and names before any compute.")
    c.add_argument("spec", nargs="?", help=spec_help)
    c.set_defaults(func=cmd_check)

    s = sub.add_parser("summary", help="print a Keras-style summary with parameter counts",
                       description="Print each layer's output shape, parameters and inputs.")
    s.add_argument("spec", nargs="?", help=spec_help)
    s.set_defaults(func=cmd_summary)

    g = sub.add_parser("graph", help="the layer graph as Graphviz DOT (or a picture with -o)",
                       description="Print the layer graph as Graphviz DOT; -o file.svg renders it with `dot`.")
    g.add_argument("spec", nargs="?", help=spec_help)
    g.add_argument("-o", "--output", help="write a picture (svg, png, pdf) or .dot file")
    g.set_defaults(func=cmd_graph)

    ce = sub.add_parser("cell", help="a spec's custom cells: weights and schedule, or the generated kernels",
                        description="Check the `cell` definitions of a spec and describe each: its weights in "
                                    "get_weights() order, which products are hoisted out of the time loop, "
                                    "where the generated kernels are cached. --show prints the generated "
                                    "numba source (forward and backprop through time).")
    ce.add_argument("spec", help="a .rnn file with cell definitions")
    ce.add_argument("--show", action="store_true", help="print the generated kernel source")
    ce.add_argument("--name", help="only this cell")
    ce.add_argument("--cuda", action="store_true",
                    help="print the generated numba.cuda source (float32) instead of the CPU kernels")
    ce.set_defaults(func=cmd_cell)

    r = sub.add_parser("run", help="train a spec on its data (or predict with a checkpoint)",
                       description="Train SPEC.rnn on the data its train section names, evaluate on the "
                                   "held-out split, print the metrics and write a checkpoint. With a "
                                   "checkpoint (.npz) and --input (or --text for a model "
                                   "trained on text), predict instead (--forecast N: the next N values of a "
                                   "series).")
    r.add_argument("spec", nargs="?", help="a .rnn spec, or a checkpoint .npz to predict with "
                                           f"(default: the shipped example {DEFAULT_SPEC})")
    r.add_argument("--epochs", type=_whole(1), help="override the spec's epochs (>= 1)")
    r.add_argument("--batch-size", type=_whole(1), help="override the spec's batch_size (>= 1)")
    r.add_argument("--seed", type=_whole(0), help="seed for weights, shuffling, dropout and data (>= 0)")
    r.add_argument("--device", choices=["cpu", "cuda", "auto"], help="where to run (default cpu)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--resume", action="store_true", help="go on from the checkpoint (--out, or SPEC.ckpt.npz) when "
                   "it exists: weights, optimizer state, epoch and shuffling; under mpiexec with any number of ranks")
    r.add_argument("--out", help="checkpoint path (default: beside the spec, SPEC.ckpt.npz)")
    r.add_argument("--log", help="write one row per epoch (loss, metrics, validation) to this CSV file; "
                                 "draw it with `rnndsl plot`")
    r.add_argument("--input", help="with a checkpoint: the .npz/.npy inputs to predict, or (a model trained on "
                                   "text) a UTF-8 text file of one text per line")
    r.add_argument("--text", action="append", help="with a checkpoint of a model trained on text: a text to "
                                                   "label (repeat for more); prints label, probability, text")
    r.add_argument("--json", action="store_true", help="with a checkpoint: print the predictions as JSON")
    r.add_argument("--output", help="with a checkpoint: write predictions to this .npy (a forecast: .csv or .npy)")
    r.add_argument("--forecast", type=_whole(1), metavar="STEPS",
                   help="with a checkpoint: forecast STEPS values after the series in --input (a .csv read "
                        "as the spec's csv(...) reads its data, or an .npz/.npy history), each prediction fed "
                        "back as the next step")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("decode", help="generate token sequences with a trained model",
                       description="Generate token sequences with a checkpoint's decoder, one compiled step "
                                   "at a time: for an encoder-decoder model from each source sequence, for a "
                                   "language model as the continuation of each prompt. Prints one sequence "
                                   "of token ids per line (--json: with its log-probability).")
    d.add_argument("checkpoint", help="a checkpoint (.npz) written by `run`")
    d.add_argument("--tokens", help='one source sequence or prompt, token ids: --tokens "3 1 4 1"')
    d.add_argument("--input", help="sources or prompts: a text file of token ids, one sequence per line, "
                                   "or an .npz/.npy as `run --input` reads")
    d.add_argument("--start", type=_whole(0), help="the token the decoder is fed first (an encoder-decoder "
                                                   "needs it; a language model's prompt is prefixed with it)")
    d.add_argument("--end", type=_whole(0), help="the token that ends a sequence")
    d.add_argument("--max-len", type=_whole(1), help="tokens to generate (default: the decoder input's steps)")
    d.add_argument("--method", choices=["greedy", "sample", "beam"], default="greedy")
    d.add_argument("--beam-width", type=_whole(1), default=4)
    d.add_argument("--temperature", type=float, default=1.0, help="logits are divided by it (sample, beam)")
    d.add_argument("--seed", type=_whole(0), help="seed for sampling")
    d.add_argument("--device", choices=["cpu", "cuda", "auto"], help="where to run (default cpu)")
    d.add_argument("--json", action="store_true", help="JSON: a list of {tokens, score}")
    d.set_defaults(func=cmd_decode)

    pl = sub.add_parser("plot", help="draw the loss and metrics per epoch of a run --log history",
                        description="Draw the loss and each metric per epoch (training and validation) from "
                                    "the CSV that `run --log` or CSVLogger writes. Needs matplotlib: "
                                    "pip install 'rnndsl[plot]'.")
    pl.add_argument("history", help="the history CSV (run --log history.csv)")
    pl.add_argument("-o", "--output", help="the picture: .png, .svg or .pdf (default: the CSV's name, .png)")
    pl.set_defaults(func=cmd_plot)

    e = sub.add_parser("examples", help="list the shipped examples, or copy one here",
                       description="List the shipped example specs; with NAME, copy NAME.rnn into the "
                                   "current folder.")
    e.add_argument("name", nargs="?", help="an example to copy, e.g. digits")
    e.set_defaults(func=cmd_examples)

    w = sub.add_parser("warmup", help="compile a spec's kernels ahead of its first run",
                       description="Compile (and cache) the kernels SPEC uses for training and "
                                   "prediction, on a batch of its own shape.")
    w.add_argument("spec", nargs="?", help=spec_help)
    w.set_defaults(func=cmd_warmup)
    cv = sub.add_parser("convert", help="a model file to another format: .keras -> .rnn, .rnn/.npz -> "
                                        ".keras or .onnx",
                        description="Convert by the files' suffixes: a Keras 3 .keras file to a spec (.rnn, its "
                                    "weights written beside it as .npz); a spec, checkpoint or .keras file to "
                                    ".keras, or to .onnx (an ONNX graph for inference).")
    cv.add_argument("source", help="model.keras, SPEC.rnn or CKPT.npz")
    cv.add_argument("target", help="the file to write: .rnn, .keras or .onnx")
    cv.set_defaults(func=cmd_convert)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed usage already
        return int(e.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    for stream in (sys.stdout, sys.stderr):
        # a name or path that the terminal's encoding cannot show is escaped, not a crash
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a detached or closed stream
                pass
    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (`rnndsl summary big.rnn | head`): stop quietly, as Unix tools do
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover
            pass
        return EXIT_PIPE
    except UsageError as e:
        print(f"rnndsl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RnnError as e:
        print(str(e), file=sys.stderr)
        return EXIT_SPEC
    except KeyboardInterrupt:
        print("rnndsl: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the promise is: no traceback for the user
        print(f"rnndsl: internal error: {type(e).__name__}: {e} (please report it; "
              "set RNNDSL_DEBUG=1 for the traceback)", file=sys.stderr)
        import os

        if os.environ.get("RNNDSL_DEBUG"):
            raise
        return 3
