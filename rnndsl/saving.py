"""Model checkpoints: spec text, weights, optimizer state, epoch and generator states in one
.npz that loads without pickle (see train/checkpoint.py for the atomic write and the format).
A model trained on text also keeps its tokenizer settings, vocabulary and label names
(meta "text": TextEncoder.to_config(), plain JSON); a checkpoint without them loads as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.npyfile import BROKEN_ZIP
from .data.text import TextEncoder
from .errors import CheckpointError, DataError, RnnError
from .train.checkpoint import open_checkpoint, save_checkpoint


def _is_keras(path) -> bool:
    return str(path).lower().endswith(".keras")


def save_model(model, path) -> Path:
    if _is_keras(path):
        from .interop.keras import save_keras

        return save_keras(model, path)
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
    if getattr(model, "text_encoder", None) is not None:
        meta["text"] = model.text_encoder.to_config()
    cfg = model.train_config
    if cfg is not None:
        meta["train"] = {"losses": cfg.losses, "from_logits": cfg.from_logits, "metrics": cfg.metric_names,
                         "optimizer": cfg.optimizer.get_config()}
        arrays.update({f"optimizer/{k}": np.asarray(v) for k, v in cfg.optimizer.state_dict().items()})
    return save_checkpoint(path, arrays, meta)


# The bit generators a checkpoint may name. The name picks a class from this table and
# nothing else: it is never looked up as an attribute of np.random.
BIT_GENERATORS = {name: getattr(np.random, name) for name in ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")}
DTYPES = ("float32", "float64")


def _generator(state, path, which: str) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    cls = BIT_GENERATORS.get(name) if isinstance(name, str) else None
    if cls is None:
        shown = repr(name[:40]) if isinstance(name, str) else f"a {type(name).__name__}"
        raise CheckpointError(f"{path}: the {which} generator state names bit generator {shown}; a checkpoint "
                              f"may name only {', '.join(BIT_GENERATORS)}")
    bit = cls()
    try:
        bit.state = state
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, AttributeError) as e:
        raise CheckpointError(f"{path}: bad {which} generator state in the checkpoint "
                              f"({type(e).__name__}: {str(e)[:200]})") from None
    return np.random.Generator(bit)


def _meta_value(meta: dict, key: str, kind, path, default=None, what: str = ""):
    """meta[key] checked against a type (a bool is not taken for an int)."""
    if key not in meta:
        if default is not None:
            return default
        raise CheckpointError(f"{path}: not an rnndsl model checkpoint (no {key!r} in its metadata)")
    value = meta[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(f"{path}: the checkpoint's {key!r} must be {what}, got {type(value).__name__} "
                              f"{str(value)[:60]!r}")
    return value


def _str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _plain(v) -> bool:
    return isinstance(v, (str, int, float, bool)) or v is None


def _schedule_config(v) -> bool:
    """A learning-rate schedule as get_config() stores it: {"class_name": name, "config":
    {option: a plain value or a list of numbers}} (rebuilt only from train/schedules.py's table)."""
    return (isinstance(v, dict) and set(v) == {"class_name", "config"} and isinstance(v["class_name"], str)
            and isinstance(v["config"], dict) and all(
                _plain(x) or (isinstance(x, list) and len(x) <= 10_000 and
                              all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in x))
                for x in v["config"].values()))


def _train_meta(train, path, n_outputs: int) -> dict:
    """The checkpoint's training configuration, with the types configure() takes."""
    if not isinstance(train, dict):
        raise CheckpointError(f"{path}: the checkpoint's 'train' must be an object, got {type(train).__name__}")
    losses, opt = train.get("losses"), train.get("optimizer")
    metrics, logits = train.get("metrics", []), train.get("from_logits")
    if not (isinstance(losses, str) or _str_list(losses)):
        raise CheckpointError(f"{path}: the checkpoint's train 'losses' must be a list of loss names")
    if not (isinstance(opt, str) or (isinstance(opt, dict) and all(
            _plain(v) or (k == "learning_rate" and _schedule_config(v)) for k, v in opt.items()))):
        raise CheckpointError(f"{path}: the checkpoint's train 'optimizer' must be a name or an object of "
                              "plain values (its learning_rate may be a schedule's config)")
    if not _str_list(metrics):
        raise CheckpointError(f"{path}: the checkpoint's train 'metrics' must be a list of metric names")
    if not (isinstance(logits, list) and len(logits) == n_outputs and all(isinstance(v, bool) for v in logits)):
        raise CheckpointError(f"{path}: the checkpoint's train 'from_logits' must be a list of "
                              f"{n_outputs} true/false values")
    return {"losses": losses, "optimizer": opt, "metrics": metrics, "from_logits": logits}


def _text_meta(cfg, path, model) -> TextEncoder:
    """The checkpoint's text settings, checked, for an input of the model."""
    try:
        enc = TextEncoder.from_config(cfg)
    except DataError as e:
        raise CheckpointError(f"{path}: the checkpoint's text settings are not valid: {e}") from None
    if enc.input is not None and enc.input not in model.input_names:
        raise CheckpointError(f"{path}: the checkpoint's text settings feed input {enc.input[:40]!r}, which its "
                              f"spec does not have ({', '.join(model.input_names)})")
    if enc.labels is not None and len(model.graph.outputs) == 1:
        classes = model.graph.type_of(model.graph.outputs[0].ref).features
        # training checks every label against the output, so more labels than classes (two
        # for one sigmoid unit) is an edited file
        if len(enc.labels) > max(classes, 2 if classes == 1 else 0):
            raise CheckpointError(f"{path}: the checkpoint's text settings name {len(enc.labels)} labels, more "
                                  f"than the {classes} class(es) the output scores")
    return enc


def load_model(path, **kw):
    """A Model exactly as saved: weights, optimizer state, epoch, generators.

    Only the arrays the stored spec needs are read (its weights, its optimizer's
    slots), each checked against the shape the spec gives it before it is made.
    A .keras path (or a zip that holds config.json) is a Keras 3 file (interop/keras.py);
    dtype= and seed= apply to it."""
    from . import compile as compile_spec

    if _is_keras(path) or _keras_zip(path):
        from .interop.keras import load_keras

        return load_keras(path, **kw)
    if kw:
        raise RnnError(f"load_model takes {', '.join(kw)} for Keras files only; a checkpoint keeps its own")
    if str(path).lower().endswith(".h5"):
        raise CheckpointError(f"{path} holds weights only (Keras's model.weights.h5): compile the model's spec, "
                              "then model.load_weights(path)")

    with open_checkpoint(path) as ck:
        return _load_model(ck, path, compile_spec)


def _keras_zip(path) -> bool:
    """Whether the file is a zip holding a Keras config.json (an .npz is a zip too)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return "config.json" in z.namelist() and "model.weights.h5" in z.namelist()
    except BROKEN_ZIP:      # not a readable zip: the checkpoint reader says what is wrong with it
        return False


def _load_model(ck, path, compile_spec):
    meta = ck.meta
    spec = _meta_value(meta, "spec", str, path, what="the spec text")
    dtype = _meta_value(meta, "dtype", str, path, what="one of float32, float64")
    if dtype not in DTYPES:
        raise CheckpointError(f"{path}: the checkpoint's dtype {dtype[:40]!r} is not one of {', '.join(DTYPES)}")
    seed = _meta_value(meta, "seed", int, path, what="a whole number >= 0")
    epoch = _meta_value(meta, "epoch", int, path, 0, what="a whole number >= 0")
    if seed < 0 or epoch < 0:
        raise CheckpointError(f"{path}: the checkpoint's seed and epoch must be >= 0, got {seed} and {epoch}")
    file = _meta_value(meta, "file", str, path, "<spec>", what="a file name")
    name = _meta_value(meta, "name", str, path, "model", what="a name")
    stored = _meta_value(meta, "weights", list, path, [], what="a list of [name, shape] pairs")
    rng = _meta_value(meta, "rng", dict, path, {}, what="an object of generator states")
    try:
        model = compile_spec(spec, dtype=dtype, seed=seed, file=file)
    except RnnError as e:
        raise CheckpointError(f"{path}: the spec stored in the checkpoint no longer compiles:\n{e}") from None
    model.name = name
    specs = [w for _, w in model.graph.weight_specs()]
    names = [w.name for w in specs]
    recorded = [s[0] if isinstance(s, list) and s else None for s in stored]
    missing = [i for i in range(len(names)) if f"weight/{i:04d}" not in ck]
    if missing or recorded != names:
        raise CheckpointError(f"{path}: the weights in the checkpoint do not match its spec "
                              f"({len(stored)} arrays recorded, {len(names) - len(missing)} of the spec's "
                              f"{len(names)} present)")
    weights = [ck.read(f"weight/{i:04d}", expect=w.shape) for i, w in enumerate(specs)]
    model.set_weights(weights)
    model.epoch = epoch
    if meta.get("text") is not None:
        model.text_encoder = _text_meta(meta["text"], path, model)
    if "fit" in rng:
        model.fit_rng = _generator(rng["fit"], path, "fit")
    if "dropout" in rng:
        model.executor.rng = _generator(rng["dropout"], path, "dropout")
    train = meta.get("train")
    if train:
        train = _train_meta(train, path, len(model.output_names))
        try:
            model.configure(loss=train["losses"], optimizer=train["optimizer"], metrics=train["metrics"],
                            from_logits=None)
        except RnnError as e:
            raise CheckpointError(f"{path}: the training configuration in the checkpoint is not valid: {e}") from None
        model.train_config.from_logits = list(train["from_logits"])
        opt = model.train_config.optimizer
        state = {}
        for key in ck.names:
            if not key.startswith("optimizer/"):
                continue
            short = key[len("optimizer/"):]
            slot, _, idx = short.rpartition("/")
            if short == "iterations":
                expect = ()
            elif slot in opt.slot_names and idx.isdigit() and int(idx) < len(specs):
                expect = specs[int(idx)].shape
            else:
                raise CheckpointError(f"{path}: optimizer state entry {short[:80]!r} does not belong to "
                                      f"{type(opt).__name__} over {len(specs)} weights "
                                      f"(slots: {', '.join(opt.slot_names) or 'none'})")
            state[short] = ck.read(key, expect=expect)
        it = state.get("iterations")
        if it is not None and (it.dtype.kind not in "iu" or int(it) < 0):
            raise CheckpointError(f"{path}: the optimizer's 'iterations' must be a whole number >= 0, "
                                  f"got {it.dtype} {it!r}")
        opt.load_state_dict(state)
    return model
