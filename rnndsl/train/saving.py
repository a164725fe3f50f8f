"""Model checkpoints: spec text, weights, optimizer state, epoch and generator states in one
.npz that loads without pickle (see checkpoint.py for the atomic write and the format)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CheckpointError, RnnError
from .checkpoint import load_checkpoint, save_checkpoint


def save_model(model, path) -> Path:
    weights = model.get_weights()
    arrays = {f"weight/{i:04d}": p for i, p in enumerate(weights)}
    meta = {
        "spec": model.source,
        "file": model.graph.file,
        "name": model.name,
        "dtype": str(model.dtype),
        "seed": model.seed,
        "epoch": model.epoch,
        "weights": [[n, list(p.shape)] for n, p in zip(model.weight_names(), weights)],
        "rng": {"fit": model.fit_rng.bit_generator.state, "dropout": model.executor.rng.bit_generator.state},
    }
    cfg = model.train_config
    if cfg is not None:
        meta["train"] = {"losses": cfg.losses, "from_logits": cfg.from_logits, "metrics": cfg.metric_names,
                         "optimizer": cfg.optimizer.get_config()}
        arrays.update({f"optimizer/{k}": np.asarray(v) for k, v in cfg.optimizer.state_dict().items()})
    return save_checkpoint(path, arrays, meta)


def _generator(state: dict) -> np.random.Generator:
    bit = getattr(np.random, state["bit_generator"])()
    bit.state = state
    return np.random.Generator(bit)


def load_model(path):
    """A Model exactly as saved: weights, optimizer state, epoch, generators."""
    from .. import compile as compile_spec

    arrays, meta = load_checkpoint(path)
    try:
        spec, dtype, seed = meta["spec"], meta["dtype"], int(meta["seed"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: not an rnndsl model checkpoint (no spec in its metadata)") from None
    try:
        model = compile_spec(spec, dtype=dtype, seed=seed, file=meta.get("file", "<spec>"))
    except RnnError as e:
        raise CheckpointError(f"{path}: the spec stored in the checkpoint no longer compiles:\n{e}") from None
    model.name = meta.get("name", model.name)
    names = model.weight_names()
    weights = [arrays.get(f"weight/{i:04d}") for i in range(len(names))]
    stored = meta.get("weights", [])
    if any(w is None for w in weights) or len(stored) != len(names) or \
            any(list(w.shape) != list(s[1]) or n != s[0] for w, s, n in zip(weights, stored, names)):
        raise CheckpointError(f"{path}: the weights in the checkpoint do not match its spec "
                              f"({len(stored)} arrays stored, the spec has {len(names)})")
    model.set_weights(weights)
    model.epoch = int(meta.get("epoch", 0))
    rng = meta.get("rng") or {}
    try:
        if "fit" in rng:
            model._fit_rng = _generator(rng["fit"])
        if "dropout" in rng:
            model.executor.rng = _generator(rng["dropout"])
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad generator state in the checkpoint ({e})") from None
    train = meta.get("train")
    if train:
        model.configure(loss=train["losses"], optimizer=train["optimizer"], metrics=train["metrics"],
                        from_logits=None)
        model.train_config.from_logits = list(train["from_logits"])
        state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
        model.train_config.optimizer.load_state_dict(state)
    return model
