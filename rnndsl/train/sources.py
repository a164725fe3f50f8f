"""The `data = ...` setting of a train section -> arrays that fit the model.

Built-in tasks and files give (x, y); this module fits them to the model's
inputs: token ids become one-hot vectors when the input is `float[T, V]`, a
task with a decoder input feeds a second model input (teacher forcing), an
npz's arrays named after the inputs and outputs feed those, and a held-out
test split is cut off (test_split, default 0.2). Text sources (text, csv with
text=, folder) leave their TextEncoder on the model (model.text_encoder), which
its checkpoint keeps for predicting from raw text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import (TextEncoder, get_dataset, load_arrays, load_csv, load_labelled_text, load_text_csv,
                    load_text_folder, sine_series, stateful_batches)
from ..data.arrays import load_named_arrays
from ..data.options import csv_conflict, fits_memory, number, whole
from ..data.series import chronological_split, check_series_options, read_series, window_starts, windows
from ..data.registry import COMMON_OPTIONS, FILE_SOURCES, SOURCE_OPTIONS
from ..errors import DataError, did_you_mean


@dataclass
class Split:
    x_train: list
    y_train: np.ndarray           # a list of arrays, one per output, for a model of several outputs
    x_test: list
    y_test: np.ndarray
    shuffle: bool = True
    batch_size: int | None = None
    decoder: bool = False         # x[1] is a teacher-forced decoder input
    notes: list[str] = field(default_factory=list)
    validation: tuple | None = None     # (xs, y) held out by time for validation (a time series)
    naive_test: np.ndarray | None = None    # the last-value forecast of each test window (a time series)

    @property
    def n_train(self) -> int:
        return len(self.y_train[0] if isinstance(self.y_train, list) else self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test[0] if isinstance(self.y_test, list) else self.y_test)


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base is None else base / p


def _one_hot(ids: np.ndarray, width: int) -> np.ndarray:
    if ids.size and (ids.max() >= width or ids.min() < 0):
        bad = int(ids.max()) if ids.max() >= width else int(ids.min())
        raise DataError(f"token id {bad} does not fit a one-hot input of {width} features")
    fits_memory(f"one-hot inputs of shape {ids.shape + (width,)}", ids.size * width, 4)
    return np.eye(width, dtype=np.float32)[ids]


# A bare path (`data = "f.npz"`) is read as npz/npy files are.
_FILE_LIKE = {"file": "npz"}


def _check_options(name: str, cfg: dict) -> None:
    source = _FILE_LIKE.get(name, name)
    if source not in FILE_SOURCES and source != "series":
        return                                  # the built-in tasks are checked by get_dataset
    allowed = tuple(SOURCE_OPTIONS[source]) + tuple(COMMON_OPTIONS)
    for opt in cfg:
        if opt in ("name", "path") or opt in allowed:
            continue
        hint = did_you_mean(str(opt), allowed)
        raise DataError(f"data source {name}() has no option {opt!r}" + (f"; {hint}" if hint else "")
                        + f" (options: {', '.join(allowed)})")
    if name != "series":
        path = cfg.get("path")
        if path is None:
            raise DataError(f"data source {name}() needs a file path, e.g. {name}(\"data.{name}\")")
        if not isinstance(path, str) or not path or "\0" in path:
            raise DataError(f"data source {name}(): the file path must be a non-empty string, got "
                            f"{str(path)[:60]!r}")
    if name == "csv":
        conflict = csv_conflict(opt for opt in cfg if opt not in ("name", "path"))
        if conflict:
            raise DataError(f"data source csv(): {conflict[1]}")


def _fit_inputs(model, xs: list) -> list:
    """One-hot token ids for float inputs whose feature size is the vocabulary."""
    out = []
    for node_id, x in zip(model.graph.inputs, xs):
        t = model.graph.nodes[node_id].out
        x = np.asarray(x)
        if not t.is_tokens and x.dtype.kind in "iu" and x.ndim == 2 and t.seq:
            x = _one_hot(x, t.features)
        out.append(x)
    return out


def load_source(model, cfg: dict, seed: int = 0, base: Path | None = None, validation_split: float = 0.0) -> Split:
    """Load and split the data named by a train section's `data` setting. A time series
    (csv(..., window=)) is split by time, validation_split included (see _series_split)."""
    opts = {k: v for k, v in cfg.items() if k not in ("name", "test_split", "path", "split_seed")}
    name = cfg["name"]
    _check_options(name, cfg)
    # the held-out set does not move with the training seed
    split_seed = whole("split_seed", cfg.get("split_seed", 0), 0)
    test_split = number("test_split", cfg.get("test_split", 0.2), 0.0)
    if test_split >= 1:
        raise DataError(f"test_split must be below 1 (a fraction held out), got {test_split}")
    shuffle, batch_size, notes = True, None, []
    if name in ("file", "npz", "npy"):
        named = None
        if name != "npy" and not opts:         # no x_key/y_key: arrays named after the inputs and outputs?
            named = load_named_arrays(_resolve(cfg["path"], base), model.input_names, model.output_names)
        if named is not None:
            xs, y = named
            notes.append(f"arrays {', '.join(model.input_names)} -> {', '.join(model.output_names)}")
        else:
            x, y = load_arrays(_resolve(cfg["path"], base), **opts)
            xs = [x]
    elif name == "csv" and cfg.get("window") is not None:
        return _series_split(model, cfg, _resolve(cfg["path"], base), test_split, validation_split)
    elif name in ("text", "folder") or (name == "csv" and "text" in opts):
        xs, y = _text_source(model, name, _resolve(cfg["path"], base), opts, base, notes)
    elif name == "csv":
        x, y = load_csv(_resolve(cfg["path"], base), **opts)
        xs = [x[:, :, None] if x.ndim == 2 and model.graph.nodes[model.graph.inputs[0]].out.seq else x]
    elif name == "series":
        # one long series in consecutive chunks for stateful layers: batches must stay in order
        batch_size = whole("series batch_size", opts.pop("batch_size", 8), 1)
        chunk = whole("series chunk", opts.pop("chunk", 20), 1)
        if "length" not in opts:
            raise DataError("data source series() needs length=, the number of values in the series")
        series = sine_series(seed=seed, **opts)
        x, y = stateful_batches(series, batch_size, chunk)
        y = y[:, -1]                            # predict the value after each chunk
        n_batches = len(x) // batch_size
        cut = max(1, int(round(n_batches * (1 - test_split)))) * batch_size
        if test_split > 0 and cut >= len(x):
            raise DataError(f"series(): {n_batches} chunk(s) of {chunk} steps in {batch_size} streams leave "
                            f"none to hold out with test_split={test_split}; make length larger")
        return Split([x[:cut]], y[:cut], [x[cut:]], y[cut:], shuffle=False, batch_size=batch_size,
                     notes=[f"{n_batches} chunks of {chunk} steps in {batch_size} streams"])
    else:
        try:
            data = get_dataset(name, **opts)
        except DataError as e:
            raise DataError(f"data = {name}(...): {e}") from None
        x, y = data[0], data[1]
        xs = [x]
        if name in ("copy", "reverse") and len(model.graph.inputs) == 2:
            xs = [x, data[2]]                   # encoder reads x, decoder reads the shifted target
    if len(xs) != len(model.graph.inputs):
        raise DataError(f"data {name!r} gives {len(xs)} input array(s) but the model takes "
                        f"{len(model.graph.inputs)} ({', '.join(model.input_names)})")
    if y is None:
        raise DataError(f"data {name!r} has no targets (y)")
    decoder = len(xs) == 2 and name in ("copy", "reverse")
    xs = _fit_inputs(model, xs)
    ys = [np.asarray(a) for a in y] if isinstance(y, list) else [np.asarray(y)]
    n = len(ys[0]) if ys[0].ndim else 0
    if n == 0:
        raise DataError(f"data {name!r} holds no samples")
    cut = n - int(round(n * test_split))
    if cut < 1 or (test_split > 0 and cut == n):
        raise DataError(f"data {name!r}: test_split={test_split} of {n} sample(s) leaves "
                        + ("no training samples" if cut < 1 else "no held-out samples (use test_split=0 "
                                                                   "to train on everything)"))
    order = np.random.default_rng([split_seed, 3]).permutation(n)
    tr, te = order[:cut], order[cut:]
    pick = (lambda idx: [a[idx] for a in ys]) if isinstance(y, list) else (lambda idx: ys[0][idx])
    return Split([a[tr] for a in xs], pick(tr), [a[te] for a in xs], pick(te), shuffle, batch_size, decoder, notes)


_TEXT_LOADERS = {"text": load_labelled_text, "csv": load_text_csv, "folder": load_text_folder}


def _text_source(model, name: str, path: Path, opts: dict, base: Path | None, notes: list) -> tuple[list, np.ndarray]:
    """Texts tokenised for the model's first input; their TextEncoder goes on the model. The
    sequence length defaults to the input's steps when the spec fixes them."""
    opts = dict(opts)
    first = model.graph.nodes[model.graph.inputs[0]].out
    if "maxlen" not in opts and first.seq and first.steps:
        opts["maxlen"] = first.steps
    x, y, vocab, labels = _TEXT_LOADERS[name](path, **opts)
    model.text_encoder = TextEncoder(vocab, x.shape[1], opts.get("padding", "pre"), opts.get("truncating", "pre"),
                                     labels, model.input_names[0])
    notes.append(f"vocabulary {len(vocab)} words, {x.shape[1]} steps, labels {labels}")
    for node in model.graph.nodes:          # pretrained vectors for embed(..., weights="file")
        if node.kind == "embed" and node.opts.get("weights"):
            info = model.load_embedding_vectors(vocab, _resolve(node.opts["weights"], base), node.name)
            notes.append(info["message"])
    return [x], y


def _series_split(model, cfg: dict, path: Path, test_split: float, validation_split: float) -> Split:
    """csv(..., window=T): the windows in time order, cut into train, validation and test
    parts by time (each part's targets all after the previous part's: no window crosses
    back); fit may shuffle the training windows among themselves. The naive forecast of a
    test window is its target's value at the window's last row."""
    opts = {k: cfg[k] for k in ("columns", "target", "window", "horizon", "stride", "sampling_rate",
                                "label_column") if k in cfg}
    check_series_options(opts)
    window, horizon = opts["window"], opts.get("horizon", 1)
    stride, rate = opts.get("stride", 1), opts.get("sampling_rate", 1)
    number("validation_split", validation_split, 0.0)
    table = read_series(path, opts.get("columns"), opts.get("target"), cfg.get("skip_header", "auto"),
                        cfg.get("delimiter", ","))
    series_fits_model(model, window, table.columns, table.targets, str(path))
    starts = window_starts(len(table.x), window, horizon, stride, rate, what=str(path))
    x, _ = windows(table.x, window, horizon, stride, rate)
    last = starts + (window - 1) * rate
    y = table.y[last + horizon].astype(np.float32)
    a, b = chronological_split(len(starts), test_split, validation_split, what=str(path))
    line = table.line[last + horizon]

    def rows(lo, hi):
        return f"lines {line[lo]}-{line[hi - 1]}" if hi > lo else "none"

    note = (f"{len(starts)} windows of {window} steps over {len(table.x)} rows of {path.name}, split by the "
            f"time of their targets: train {a} ({rows(0, a)})"
            + (f", validation {b - a} ({rows(a, b)})" if b > a else "")
            + (f", test {len(starts) - b} ({rows(b, len(starts))})" if b < len(starts) else ""))
    return Split([x[:a]], y[:a], [x[b:]], y[b:], shuffle=True, notes=[note],
                 validation=([x[a:b]], y[a:b]) if b > a else None,
                 naive_test=table.y[last[b:]].astype(np.float32))


def series_fits_model(model, window: int, columns: list, targets: list, where: str) -> None:
    """A time series' windows fit the model: one float sequence input of `window` steps (or
    any) and one feature per column; an output of one feature per target column."""
    g = model.graph
    if len(g.inputs) != 1:
        raise DataError(f"{where}: a time series gives one input, windows of its columns; the model takes "
                        f"{len(g.inputs)} ({', '.join(model.input_names)})")
    t = g.nodes[g.inputs[0]].out
    name = model.input_names[0]
    if t.is_tokens or not t.seq:
        raise DataError(f"{where}: a time series gives windows (batch, steps, features); input {name!r} is {t}; "
                        f"declare it as float[{window}, {len(columns)}]")
    if t.steps is not None and t.steps != window:
        raise DataError(f"{where}: window={window} but input {name!r} declares {t.steps} steps; make them agree")
    if t.features != len(columns):
        raise DataError(f"{where}: the windows have {len(columns)} feature(s) (columns {_listed(columns)}) but "
                        f"input {name!r} takes {t.features}")
    for o in g.outputs:
        ot = g.type_of(o.ref)
        if not ot.is_tokens and ot.features != len(targets):
            raise DataError(f"{where}: output {o.name!r} gives {ot.features} value(s) per sample, but there are "
                            f"{len(targets)} target column(s) ({_listed(targets)})")


def _listed(names: list) -> str:
    shown = ", ".join(repr(n) for n in names[:8])
    return shown + (f" and {len(names) - 8} more" if len(names) > 8 else "")
