"""The `train { ... }` block: checked here, carried out by rnndsl.train.

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

from ..errors import DiagnosticSink, Pos, did_you_mean
from ..lang import ast

LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
          "mse", "mae", "mean_squared_error", "mean_absolute_error")
OPTIMIZERS = {
    "sgd": ("learning_rate", "momentum", "nesterov"),
    "adam": ("learning_rate", "beta_1", "beta_2", "epsilon"),
    "rmsprop": ("learning_rate", "rho", "momentum", "epsilon"),
    "adagrad": ("learning_rate", "initial_accumulator_value", "epsilon"),
}
OPTIMIZER_COMMON = ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay")
DATASETS = ("digits", "addition", "copy", "reverse", "sine", "series", "npz", "npy", "csv", "text")
METRICS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")

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
    "seed": ("int", "a whole number"),
    "patience": ("posint", "a whole number >= 1"),
    "verbose": ("int", "0, 1 or 2"),
}


def _word(v) -> str | None:
    if isinstance(v, ast.Str):
        return v.value
    if isinstance(v, ast.Ref) and len(v.parts) == 1:
        return v.parts[0]
    return None


def _literal(v, sink: DiagnosticSink, where: str):
    if isinstance(v, (ast.Num, ast.Str, ast.Bool)):
        return v.value
    if isinstance(v, ast.ListValue):
        return [_literal(x, sink, where) for x in v.items]
    if isinstance(v, ast.Ref) and len(v.parts) == 1:
        return v.parts[0]
    sink.error(v.pos, f"{where} takes plain values (numbers, strings, true/false)")
    return None


def _call_config(v, names, allowed_opts, sink: DiagnosticSink, what: str) -> dict | None:
    """`name` or `name(k=v, ...)` -> {"name": name, **options}."""
    if isinstance(v, ast.Call):
        name, args, pos = v.name, v.args, v.pos
    else:
        name, args, pos = _word(v), [], v.pos
    if name not in names:
        hint = did_you_mean(str(name), names) or f"one of: {', '.join(names)}"
        sink.error(pos, f"unknown {what} {name!r}", hint)
        return None
    cfg = {"name": name}
    for a in args:
        if a.name is None:
            if what == "data source" and "path" not in cfg:
                cfg["path"] = _literal(a.value, sink, what)
                continue
            sink.error(a.pos, f"{what} options are named, e.g. {name}(learning_rate=0.01)")
            continue
        opts = allowed_opts(name)
        if opts is not None and a.name not in opts:
            hint = did_you_mean(a.name, opts) or f"{name} takes: {', '.join(opts)}"
            sink.error(a.pos, f"{name} has no option {a.name!r}", hint)
            continue
        cfg[a.name] = _literal(a.value, sink, what)
    return cfg


def check_train_block(block: ast.TrainBlock, sink: DiagnosticSink) -> tuple[dict, dict[str, Pos]]:
    cfg: dict = {}
    where: dict[str, Pos] = {"train": block.pos}
    for s in block.settings:
        if s.name not in SETTINGS:
            hint = did_you_mean(s.name, SETTINGS) or f"settings: {', '.join(SETTINGS)}"
            sink.error(s.pos, f"unknown train setting {s.name!r}", hint)
            continue
        if s.name in cfg:
            sink.error(s.pos, f"train setting {s.name!r} is given twice")
            continue
        kind, desc = SETTINGS[s.name]
        v = s.value
        value = _check_setting(kind, desc, s, v, sink)
        if value is not None:
            cfg[s.name] = value
            where[s.name] = v.pos
    return cfg, where


def _check_setting(kind, desc, s, v, sink):
    bad = lambda: sink.error(v.pos, f"{s.name} takes {desc}")  # noqa: E731
    if kind == "data":
        if isinstance(v, ast.Str):
            return {"name": "file", "path": v.value}
        return _call_config(v, DATASETS, lambda n: None, sink, "data source")
    if kind == "loss":
        w = _word(v)
        if w not in LOSSES:
            hint = did_you_mean(str(w), LOSSES) or f"one of: {', '.join(LOSSES)}"
            sink.error(v.pos, f"unknown loss {w!r}" if w else f"loss takes {desc}", hint)
            return None
        return w
    if kind == "optimizer":
        return _call_config(v, tuple(OPTIMIZERS), lambda n: OPTIMIZERS[n] + OPTIMIZER_COMMON, sink, "optimizer")
    if kind == "metrics":
        items = v.items if isinstance(v, ast.ListValue) else [v]
        out = []
        for it in items:
            w = _word(it)
            if w not in METRICS:
                sink.error(it.pos, f"unknown metric {w!r}", did_you_mean(str(w), METRICS) or f"one of: {', '.join(METRICS)}")
                continue
            out.append(w)
        return out
    if kind == "bool":
        if isinstance(v, ast.Bool):
            return v.value
        return bad()
    if kind in ("posint", "int"):
        if isinstance(v, ast.Num) and isinstance(v.value, int) and (kind == "int" or v.value >= 1):
            return v.value
        return bad()
    if kind == "fraction":
        if isinstance(v, ast.Num) and 0 <= v.value < 1:
            return float(v.value)
        return bad()
    raise AssertionError(kind)  # pragma: no cover
