"""The `train { ... }` block of a spec: checked here against the registries of losses,
metrics, optimizers and data sources (the names and options Model.compile/fit take),
carried out by rnndsl.train. The graph builder calls check_train_block through the
parameter it is handed (rnndsl.model passes this function).

    train {
      data = digits(test_split=0.2)
      loss = "sparse_categorical_crossentropy"
      optimizer = adam(learning_rate=0.003, clipnorm=1.0)
      batch_size = 32
      epochs = 30
      metrics = ["accuracy"]
      validation_split = 0.1
    }
"""

from __future__ import annotations

from ..data.options import csv_conflict
from ..data.registry import COMMON_OPTIONS, FILE_SOURCES, SOURCE_OPTIONS, SOURCE_REQUIRED, SOURCES
from ..data.series import series_option_problems
from ..errors import DiagnosticSink, Pos, RnnError, clip, did_you_mean
from ..graph.sizes import MAX_ARRAY_ELEMENTS
from ..lang import ast
from .losses import loss_names
from .metrics import metric_names
from .optimizers import OPTIMIZERS, Optimizer, flag_options, get_optimizer, optimizer_options
from .schedules import SCHEDULES, get_schedule, schedule_options, serialize_schedule

# setting -> (kind, description)
SETTINGS = {
    "data": ("data", "a data source such as digits() or npz(\"file.npz\")"),
    "loss": ("loss", "a loss name"),
    "from_logits": ("bool", "true or false"),
    "optimizer": ("optimizer", "an optimizer such as adam or sgd(learning_rate=0.1)"),
    "batch_size": ("posint", "a whole number >= 1"),
    "epochs": ("posint", "a whole number >= 1"),
    "metrics": ("metrics", "a list such as [\"accuracy\"]"),
    "validation_split": ("fraction", "a fraction in [0, 1)"),
    "test_split": ("fraction", "a fraction in [0, 1)"),
    "shuffle": ("bool", "true or false"),
    "seed": ("seed", "a whole number >= 0"),
    "patience": ("posint", "a whole number >= 1"),
    "verbose": ("verbose", "0, 1 or 2"),
}


def _word(v) -> str | None:
    if isinstance(v, ast.Str):
        return v.value
    if isinstance(v, ast.Ref) and len(v.parts) == 1:
        return v.parts[0]
    return None




_BAD = object()


def _typed(kind, v, what: str, sink: DiagnosticSink):
    """The Python value of `v` for an option of the given kind (see rnndsl.data.options),
    or _BAD after reporting what it takes."""
    def bad(takes: str, hint: str | None = None):
        sink.error(v.pos, f"{what} takes {takes}, got {ast.describe(v)}", hint)
        return _BAD

    num = v.value if isinstance(v, ast.Num) else None
    whole = isinstance(num, int)
    if kind == "count":
        return num if whole and num >= 1 else bad("a whole number >= 1")
    if kind == "seed":
        return num if whole and num >= 0 else bad("a whole number >= 0")
    if kind == "int":
        return num if whole else bad("a whole number")
    if isinstance(kind, tuple) and kind[0] == "range":
        lo, hi = kind[1], kind[2]
        return num if whole and lo <= num <= hi else bad(f"a whole number from {lo} to {hi}")
    if kind == "number>=0":
        return float(num) if num is not None and num >= 0 else bad("a number >= 0")
    if kind == "number>0":
        return float(num) if num is not None and num > 0 else bad("a number > 0")
    if kind == "fraction":
        return float(num) if num is not None and 0 <= num < 1 else bad("a fraction in [0, 1)")
    if kind == "bool":
        return v.value if isinstance(v, ast.Bool) else bad("true or false")
    if kind == "string":
        return v.value if isinstance(v, ast.Str) else bad("a string in double quotes")
    if kind == "char":
        return v.value if isinstance(v, ast.Str) and len(v.value) == 1 else bad("one character in double quotes",
                                                                              'e.g. delimiter=";"')
    if kind == "strings":
        if isinstance(v, ast.ListValue) and all(isinstance(x, ast.Str) for x in v.items) and v.items:
            return [x.value for x in v.items]
        return bad('a list of strings, e.g. ["neg", "pos"]')
    if kind == "columns":
        items = v.items if isinstance(v, ast.ListValue) else [v]
        if items and all((isinstance(x, ast.Str) and x.value) or (isinstance(x, ast.Num) and isinstance(x.value, int)
                                                                  and x.value >= 0) for x in items):
            values = [x.value for x in items]
            return values if isinstance(v, ast.ListValue) else values[0]
        return bad('a column\'s name or number (from 0), or a list of them', 'e.g. columns=["temp", "humidity"]')
    if kind == "column":
        if isinstance(v, ast.Str) and v.value:
            return v.value
        return num if whole and num >= 0 else bad("a column: its header name in double quotes, or its number "
                                                  "counted from 0", 'e.g. text="review"')
    if kind == "header":
        if isinstance(v, ast.Bool):
            return v.value
        if isinstance(v, ast.Str) and v.value == "auto":
            return "auto"
        return bad('true, false or "auto"')
    if isinstance(kind, tuple) and kind[0] == "choice":
        word = _word(v)
        if word in kind[1]:
            return word
        hint = did_you_mean(str(word), kind[1]) if word else None
        return bad(f"one of {', '.join(kind[1])}", hint)
    raise AssertionError(kind)  # pragma: no cover


def _option_name_ok(a, name: str, allowed, where: dict, sink: DiagnosticSink) -> bool:
    """The keyword a.name is one of `allowed` and not given before (in `where`); else
    reported (with did-you-mean) and False."""
    if a.name not in allowed:
        hint = did_you_mean(a.name, allowed) or f"{name} takes: {', '.join(allowed)}"
        sink.error(a.pos, f"{name} has no option {clip(a.name)!r}", hint)
        return False
    if a.name in where:
        sink.error(a.pos, f"option {a.name!r} is given twice")
        return False
    return True


def _named_call(v, known, setting: str, example: str, sink: DiagnosticSink):
    """(name, args, pos) of a setting's value `name(...)` or `name` whose name is in
    `known`; None after reporting anything else (with did-you-mean)."""
    if isinstance(v, ast.Call):
        name, args, pos = v.name, v.args, v.pos
    else:
        name, args, pos = _word(v), [], v.pos
    if name is None:
        sink.error(pos, f"{setting} takes {example}, got {ast.describe(v)}")
        return None
    if name not in known:
        hint = did_you_mean(str(name), known) or f"one of: {', '.join(known)}"
        what = "data source" if setting == "data" else setting
        sink.error(pos, f"unknown {what} {clip(str(name))!r}", hint)
        return None
    return name, args, pos


def _example(name: str) -> str:
    """A file source with its path, for hints."""
    return 'folder("data/train")' if name == "folder" else f'{name}("data.{name}")'


def _data_source(v, sink: DiagnosticSink) -> dict | None:
    """`data = name(...)`: the source's name, its file, its options, each checked against
    the data-source registry (rnndsl.data.options.SOURCE_OPTIONS); the synthetic sets also
    against the memory bound."""
    named = _named_call(v, SOURCES, "data", "a data source such as digits() or npz(\"file.npz\")", sink)
    if named is None:
        return None
    name, args, pos = named
    allowed = {**SOURCE_OPTIONS[name], **COMMON_OPTIONS}
    cfg: dict = {"name": name}
    where: dict = {}
    ok = True
    for a in args:
        if a.name is None:
            if name in FILE_SOURCES and "path" not in cfg and not where:
                if not isinstance(a.value, ast.Str):
                    sink.error(a.value.pos, f"{name} takes the file's path first, in double quotes, "
                                            f"got {ast.describe(a.value)}", f"e.g. {_example(name)}")
                    ok = False
                elif not a.value.value:
                    sink.error(a.value.pos, f"{name} needs a file path, got an empty string")
                    ok = False
                cfg["path"] = a.value.value if isinstance(a.value, ast.Str) else None
                continue
            example = next(iter(SOURCE_OPTIONS[name]), "test_split")
            sink.error(a.pos, f"the options of {name} are named, e.g. {name}({example}=...)"
                       if name not in FILE_SOURCES else f"{name} takes one file path; its other options are named")
            ok = False
            continue
        if not _option_name_ok(a, name, allowed, where, sink):
            ok = False
            continue
        value = _typed(allowed[a.name], a.value, a.name, sink)
        where[a.name] = a.value.pos
        if value is _BAD:
            ok = False
            continue
        cfg[a.name] = value
    if name in FILE_SOURCES and "path" not in cfg:
        sink.error(pos, f"{name} needs a {'folder' if name == 'folder' else 'file'} path", f"e.g. {_example(name)}")
        return None
    conflict = csv_conflict(where) if name == "csv" and ok else None
    if conflict:
        option, message, hint = conflict
        sink.error(where.get(option, pos), message, hint)
        return None
    if name == "csv" and ok and "text" in cfg and cfg["text"] == cfg.get("label"):
        sink.error(where["label"], f"text and label name the same column {cfg['text']!r}")
        return None
    missing = [k for k in SOURCE_REQUIRED.get(name, ()) if k not in where]
    if missing:
        example = ", ".join(f"{k}={1000 if k == 'n' else 20}" for k in missing)
        sink.error(pos, f"{name} needs {', '.join(missing)}", f"e.g. {name}({example})")
        return None
    if not ok:
        return None
    if name == "csv":
        problems = series_option_problems(cfg)
        for opt, message, hint in problems:
            sink.error(where.get(opt, pos), message, hint)
        if problems:
            return None
    return _check_data_size(cfg, pos, where, sink)


def _check_data_size(cfg: dict, pos, where: dict, sink: DiagnosticSink) -> dict | None:
    """A synthetic data set that cannot be made (options that contradict each other, or too
    large to hold in memory, with its figure) is refused."""
    name = cfg["name"]
    if name in ("copy", "reverse") and cfg.get("min_length", 1) > cfg["length"]:
        sink.error(where["min_length"], f"min_length {cfg['min_length']} is longer than length {cfg['length']}",
                   "min_length is at most length")
        return None
    if name == "addition":
        m = 10 ** cfg.get("digits", 2)
        if cfg["n"] > m * (m + 1) // 2:
            sink.error(where["n"], f"only {m * (m + 1) // 2:,} distinct questions exist with {cfg.get('digits', 2)} "
                       f"digit(s); n asks for {cfg['n']:,}", "more digits, or a smaller n")
            return None
    if name in ("copy", "reverse", "sine"):
        n = cfg["n"] * cfg["length"]
    elif name == "addition":
        n = cfg["n"] * (2 * cfg.get("digits", 2) + 1)
    elif name == "series":
        n = cfg["length"]
    else:
        return cfg
    if n > MAX_ARRAY_ELEMENTS:
        at = max((k for k in ("n", "length") if k in where), key=lambda k: cfg[k], default=None)
        sink.error(where[at] if at else pos, f"{name} would make {n:,} values ({n * 4:,} bytes as 32-bit numbers); "
                   f"rnndsl makes at most {MAX_ARRAY_ELEMENTS:,} per array", "ask for fewer samples or steps")
        return None
    return cfg


def _optimizer(v, sink: DiagnosticSink) -> dict | None:
    """`optimizer = adam(...)`: a known name, known options of the right types, and values
    the optimizer accepts (its own range checks, run here so that `check` reports them)."""
    named = _named_call(v, OPTIMIZERS, "optimizer", "an optimizer such as adam or sgd(learning_rate=0.1)", sink)
    if named is None:
        return None
    name, args, pos = named
    allowed = optimizer_options(name)
    flags = flag_options(name)
    cfg = {"name": name}
    where = {}
    ok = True
    for a in args:
        if a.name is None:
            sink.error(a.pos, f"optimizer options are named, e.g. {name}(learning_rate=0.01)")
            ok = False
            continue
        if not _option_name_ok(a, name, allowed, where, sink):
            ok = False
            continue
        where[a.name] = a.value.pos
        if a.name == "learning_rate" and isinstance(a.value, ast.Call):
            value = _schedule(a.value, sink)
            value = _BAD if value is None else value
        else:
            value = _typed("bool" if a.name in flags else "number>=0", a.value, a.name, sink)
        if value is _BAD:
            ok = False
            continue
        cfg[a.name] = value
    if not ok:
        return None
    try:
        get_optimizer(dict(cfg))
    except RnnError as e:
        text = str(e)
        at = next((where[k] for k in sorted(where, key=len, reverse=True) if text.startswith(k)), pos)
        sink.error(at, text)
        return None
    return cfg


def _schedule_value(kind: str, v, what: str, sink: DiagnosticSink):
    """A schedule option's value of the kind its class declares (schedules.py OPTIONS)."""
    if kind == "numbers":
        if isinstance(v, ast.ListValue) and v.items and all(isinstance(x, ast.Num) for x in v.items):
            return [x.value for x in v.items]
        sink.error(v.pos, f"{what} takes a list of numbers, got {ast.describe(v)}", "e.g. [1000, 2000]")
        return _BAD
    if kind == "count>=0":
        return _typed("seed", v, what, sink)
    if kind == "fraction":
        num = v.value if isinstance(v, ast.Num) else None
        if num is not None and 0 <= num <= 1:
            return float(num)
        sink.error(v.pos, f"{what} takes a number in [0, 1], got {ast.describe(v)}")
        return _BAD
    return _typed(kind, v, what, sink)


def _schedule(v: ast.Call, sink: DiagnosticSink) -> dict | None:
    """`learning_rate = cosine_decay(0.003, 1000, warmup_steps=100, warmup_target=0.01)`: a
    schedule from the registry (train/schedules.py), its options positional in the
    constructor's order or named; its config in Keras's form, or None after reporting."""
    named = _named_call(v, SCHEDULES, "learning-rate schedule", "a schedule such as cosine_decay(0.003, 1000)",
                        sink)
    if named is None:
        return None
    name, args, pos = named
    cls = SCHEDULES[name]
    order = schedule_options(name)
    cfg: dict = {}
    where: dict = {}
    ok = True
    for i, a in enumerate(args):
        if a.name is None:
            if any(b.name is not None for b in args[:i]):
                sink.error(a.pos, "a positional option after a named one", f"{name}({', '.join(order)})")
                ok = False
                continue
            if i >= len(order):
                sink.error(a.pos, f"{name} takes {len(order)} options", f"{name}({', '.join(order)})")
                ok = False
                continue
            key = order[i]
        else:
            if not _option_name_ok(a, name, order, where, sink):
                ok = False
                continue
            key = a.name
        if key in where:
            sink.error(a.pos, f"option {key!r} is given twice")
            ok = False
            continue
        where[key] = a.value.pos
        value = _schedule_value(cls.OPTIONS[key], a.value, key, sink)
        if value is _BAD:
            ok = False
            continue
        cfg[key] = value
    if not ok:
        return None
    missing = [k for k in cls.REQUIRED if k not in where]
    if missing:
        sink.error(pos, f"{name} needs {', '.join(missing)}", f"{name}({', '.join(order)})")
        return None
    try:
        return serialize_schedule(get_schedule(name, **cfg))
    except RnnError as e:
        text = str(e)
        at = next((where[k] for k in sorted(where, key=len, reverse=True) if text.startswith(k)), pos)
        sink.error(at, text)
        return None


OPTIMIZER_TEXT = "<optimizer>"


def optimizer_from_text(text: str) -> Optimizer:
    """An optimizer from its spec form, "adam(learning_rate=0.003)" or
    "sgd(learning_rate=exponential_decay(0.1, 1000, 0.9), momentum=0.9)", checked as a
    spec's `optimizer = ...` is (a SpecError names what is wrong, with its column)."""
    from ..lang.parser import parse

    head = "train { optimizer = "
    spec = parse(f"{head}{text} }}", OPTIMIZER_TEXT)
    sink = DiagnosticSink(spec.source, OPTIMIZER_TEXT)
    blocks = [s for s in spec.statements if isinstance(s, ast.TrainBlock)]
    if len(spec.statements) != 1 or len(blocks) != 1 or [s.name for s in blocks[0].settings] != ["optimizer"]:
        sink.error(Pos(OPTIMIZER_TEXT, 1, len(head) + 1), f"not one optimizer: {clip(text)!r}",
                   'e.g. "adam(learning_rate=0.003)"')
        sink.raise_if_any()
    cfg = _optimizer(blocks[0].settings[0].value, sink)
    sink.raise_if_any()
    return get_optimizer(cfg)


def check_train_block(block: ast.TrainBlock, sink: DiagnosticSink) -> tuple[dict, dict[str, Pos]]:
    cfg: dict = {}
    where: dict[str, Pos] = {"train": block.pos}
    seen: set[str] = set()
    for s in block.settings:
        if s.name not in SETTINGS:
            hint = did_you_mean(s.name, SETTINGS) or f"settings: {', '.join(SETTINGS)}"
            sink.error(s.pos, f"unknown train setting {clip(s.name)!r}", hint)
            continue
        if s.name in seen:
            sink.error(s.pos, f"train setting {s.name!r} is given twice")
            continue
        seen.add(s.name)
        kind, desc = SETTINGS[s.name]
        v = s.value
        value = _check_setting(kind, desc, s, v, sink)
        if value is not None:
            cfg[s.name] = value
            where[s.name] = v.pos
    data = cfg.get("data")
    if "test_split" in cfg and data is not None:
        # `test_split = 0.1` in the block holds out data as `data = digits(test_split=0.1)` does
        if "test_split" in data:
            sink.error(where["test_split"], "test_split is given twice: here and in data = ...",
                       "keep one of them")
        else:
            data["test_split"] = cfg["test_split"]
    return cfg, where


def _check_setting(kind, desc, s, v, sink):
    bad = lambda: sink.error(v.pos, f"{s.name} takes {desc}")  # noqa: E731
    if kind == "data":
        if isinstance(v, ast.Str):
            if not v.value:
                sink.error(v.pos, "data takes a file path, got an empty string")
                return None
            return {"name": "file", "path": v.value}
        return _data_source(v, sink)
    if kind == "loss":
        w = _word(v)
        losses = loss_names()
        if w not in losses:
            hint = did_you_mean(str(w), losses) or f"one of: {', '.join(losses)}"
            sink.error(v.pos, f"unknown loss {clip(w)!r}" if w else f"loss takes {desc}", hint)
            return None
        return w
    if kind == "optimizer":
        return _optimizer(v, sink)
    if kind == "metrics":
        items = v.items if isinstance(v, ast.ListValue) else [v]
        out = []
        known = metric_names()
        for it in items:
            w = _word(it)
            if w is None:
                sink.error(it.pos, f"metrics takes names such as \"accuracy\", got {ast.describe(it)}")
                continue
            if w not in known:
                sink.error(it.pos, f"unknown metric {clip(w)!r}",
                           did_you_mean(str(w), known) or f"one of: {', '.join(known)}")
                continue
            out.append(w)
        return out
    if kind == "bool":
        if isinstance(v, ast.Bool):
            return v.value
        return bad()
    if kind in ("posint", "seed"):
        if isinstance(v, ast.Num) and isinstance(v.value, int) and v.value >= (1 if kind == "posint" else 0):
            return v.value
        return bad()
    if kind == "verbose":
        if isinstance(v, ast.Num) and v.value in (0, 1, 2) and isinstance(v.value, int):
            return v.value
        return bad()
    if kind == "fraction":
        if isinstance(v, ast.Num) and 0 <= v.value < 1:
            return float(v.value)
        return bad()
    raise AssertionError(kind)  # pragma: no cover
