"""The `data = ...` setting of a train section -> arrays that fit the model.

Built-in tasks and files give (x, y); this module fits them to the model's
inputs: token ids become one-hot vectors when the input is `float[T, V]`, a
task with a decoder input feeds a second model input (teacher forcing), and a
held-out test split is cut off (test_split, default 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import get_dataset, load_arrays, load_csv, load_labelled_text, stateful_batches, sine_series
from ..errors import DataError


@dataclass
class Split:
    x_train: list
    y_train: np.ndarray
    x_test: list
    y_test: np.ndarray
    shuffle: bool = True
    batch_size: int | None = None
    decoder: bool = False         # x[1] is a teacher-forced decoder input
    notes: list[str] = field(default_factory=list)


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base is None else base / p


def _one_hot(ids: np.ndarray, width: int) -> np.ndarray:
    if ids.max() >= width:
        raise DataError(f"token id {int(ids.max())} does not fit a one-hot input of {width} features")
    return np.eye(width, dtype=np.float32)[ids]


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


def load_source(model, cfg: dict, seed: int = 0, base: Path | None = None) -> Split:
    """Load and split the data named by a train section's `data` setting."""
    opts = {k: v for k, v in cfg.items() if k not in ("name", "test_split", "path", "split_seed")}
    name = cfg["name"]
    split_seed = int(cfg.get("split_seed", 0))    # the held-out set does not move with the training seed
    test_split = float(cfg.get("test_split", 0.2))
    shuffle, batch_size, notes = True, None, []
    if name in ("file", "npz", "npy"):
        x, y = load_arrays(_resolve(cfg["path"], base), **opts)
        xs = [x]
    elif name == "csv":
        x, y = load_csv(_resolve(cfg["path"], base), **opts)
        xs = [x[:, :, None] if x.ndim == 2 and model.graph.nodes[model.graph.inputs[0]].out.seq else x]
    elif name == "text":
        x, y, vocab, labels = load_labelled_text(_resolve(cfg["path"], base), **opts)
        xs = [x]
        notes.append(f"vocabulary {len(vocab.to_list())} words, labels {labels}")
        for node in model.graph.nodes:          # pretrained vectors for embed(..., weights="file")
            if node.kind == "embed" and node.opts.get("weights"):
                info = model.load_embedding_vectors(vocab, _resolve(node.opts["weights"], base), node.name)
                notes.append(info["message"])
    elif name == "series":
        # one long series in consecutive chunks for stateful layers: batches must stay in order
        batch_size = int(opts.pop("batch_size", 8))
        chunk = int(opts.pop("chunk", 20))
        series = sine_series(seed=seed, **opts)
        x, y = stateful_batches(series, batch_size, chunk)
        y = y[:, -1]                            # predict the value after each chunk
        n_batches = len(x) // batch_size
        cut = max(1, int(round(n_batches * (1 - test_split)))) * batch_size
        return Split([x[:cut]], y[:cut], [x[cut:]], y[cut:], shuffle=False, batch_size=batch_size,
                     notes=[f"{n_batches} chunks of {chunk} steps in {batch_size} streams"])
    else:
        data = get_dataset(name, **opts)
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
    n = len(y)
    order = np.random.default_rng([split_seed, 3]).permutation(n)
    cut = n - int(round(n * test_split))
    tr, te = order[:cut], order[cut:]
    return Split([a[tr] for a in xs], np.asarray(y)[tr], [a[te] for a in xs], np.asarray(y)[te],
                 shuffle, batch_size, decoder, notes)
