"""`python -m rnndsl run`: train a spec on its data, evaluate, checkpoint; or predict with a checkpoint."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, DataError, TrainingError, whole_number
from ..train.checkpoint import atomic_write, unwritable
from ..train.sources import load_source


def default_checkpoint(spec_path: Path) -> Path:
    return spec_path.with_suffix(".ckpt.npz")


def greedy_decode(model, src, start_column) -> np.ndarray:
    """Decode with the model's own previous outputs, not the true ones: the decoder is fed
    the start token, then the argmax of each step (Model.decode, one step at a time)."""
    return model.decode(src, start=start_column, max_len=_decoder_steps(model, src))


def _decoder_steps(model, src) -> int:
    t = model.graph.nodes[model.graph.inputs[1]].out
    return t.steps or src.shape[1]


def _sequence_report(model, split) -> dict:
    """Per-step and exact-sequence accuracy for a per-step classifier (greedy for seq2seq)."""
    pred = model.predict(split.x_test)
    if isinstance(pred, list) or pred.ndim != 3 or split.y_test.ndim != 2:
        return {}
    hit = pred.argmax(-1) == split.y_test
    report = {"per_step_accuracy": float(hit.mean()), "sequence_accuracy": float(hit.all(axis=1).mean())}
    if split.decoder:
        greedy = greedy_decode(model, split.x_test[0], split.x_test[1][:, 0]) == split.y_test
        report["greedy_per_step_accuracy"] = float(greedy.mean())
        report["greedy_sequence_accuracy"] = float(greedy.all(axis=1).mean())
    return report


def _stateful_report(model, split, batch_size) -> dict:
    """Test loss with the state carried across chunks against the state reset before each chunk."""
    xs, y = split.x_test, split.y_test
    n = len(y)

    def run(carry: bool) -> float:
        model.reset_states()
        total = 0.0
        for start in range(0, n - batch_size + 1, batch_size):
            if not carry:
                model.reset_states()
            sl = slice(start, start + batch_size)
            total += model.evaluate([a[sl] for a in xs], y[sl], batch_size=batch_size,
                                    return_dict=True)["loss"] * batch_size
        return total / (n - n % batch_size)

    return {"loss_state_carried": run(True), "loss_state_reset": run(False)}


def _finite_weights(model) -> bool:
    """No weight holds NaN or inf (a checkpoint of such weights is not saved as a result)."""
    return all(bool(np.isfinite(w).all()) for w in model.get_weights())


def _catch_interrupt(model):
    """Turn the first Ctrl-C into a request to stop after the current batch (a second one
    interrupts at once). Returns the previous handler, or None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        model.stop_requested = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, handler)
    return previous


def train_spec(spec_path: Path, epochs=None, batch_size=None, seed=None, quiet=False, out=None, device=None,
               stream=None, log=None) -> dict:
    """Train a spec on its data; `log`: a CSV file that gets one row per epoch (CSVLogger)."""
    from .. import load
    from ..train.callbacks import CSVLogger

    stream = stream or sys.stdout
    model = load(spec_path, seed=seed or 0, device=device or "cpu")
    cfg = dict(model.graph.train)
    if "data" not in cfg:
        raise TrainingError(f"{spec_path}: the train section names no data; add e.g. `data = digits()`")
    if "loss" not in cfg:
        raise TrainingError(f"{spec_path}: the train section names no loss")
    seed = seed if seed is not None else cfg.get("seed", 0)
    epochs = epochs if epochs is not None else cfg.get("epochs", 10)
    for name, value, least in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if value is not None:
            whole_number(name, value, least, TrainingError)
    out = Path(out) if out else default_checkpoint(spec_path)
    why = unwritable(out)                       # before training: a bad path must not cost the run
    if why:
        raise CheckpointError(f"cannot write the checkpoint {out}: {why}")
    split = load_source(model, cfg["data"], seed=seed, base=spec_path.parent)
    batch_size = batch_size or split.batch_size or cfg.get("batch_size", 32)
    if split.batch_size and batch_size != split.batch_size:
        raise DataError(f"this data comes in {split.batch_size} parallel streams; batch_size must be "
                        f"{split.batch_size}, got {batch_size}")
    model.configure()
    verbose = 0 if quiet else cfg.get("verbose", "auto")
    if not quiet:
        for note in split.notes:
            stream.write(f"data: {note}\n")
        stream.write(f"data: {len(split.y_train)} training samples, {len(split.y_test)} held out\n")
    early = cfg.get("patience")
    t0 = time.perf_counter()
    previous = _catch_interrupt(model)
    try:
        history = model.fit(split.x_train, split.y_train, batch_size=batch_size, epochs=epochs,
                            validation_split=cfg.get("validation_split", 0.0), shuffle=split.shuffle and
                            cfg.get("shuffle", True), seed=seed, verbose=verbose,
                            early_stopping=early, callbacks=[CSVLogger(log)] if log else None)
    except TrainingError:
        if _finite_weights(model):
            model.save(out)
            stream.write(f"saved the last good weights to {out}\n")
        else:
            stream.write(f"the weights hold NaN or inf: nothing saved to {out}\n")
        raise
    except KeyboardInterrupt:
        model.save(out)
        stream.write(f"\ninterrupted: saved a checkpoint of epoch {model.epoch} to {out}\n")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    seconds = time.perf_counter() - t0
    result = {"epochs": len(history.epoch), "seconds": seconds}
    if len(split.y_test) == 0:
        stream.write("no held-out data (test_split=0): no test metrics\n")
    elif split.batch_size:
        result.update(_stateful_report(model, split, batch_size))
    else:
        test = model.evaluate(split.x_test, split.y_test, batch_size=batch_size, return_dict=True)
        result.update({f"test_{k}": v for k, v in test.items()})
        result.update(_sequence_report(model, split))
    if not _finite_weights(model):
        raise TrainingError(f"training left NaN or inf in the weights; nothing saved to {out}")
    model.save(out)
    result["checkpoint"] = str(out)
    stream.write(f"trained {result['epochs']} epochs in {seconds:.1f}s\n")
    for k, v in result.items():
        if k not in ("epochs", "seconds", "checkpoint"):
            stream.write(f"{k}: {v:.4f}\n")
    stream.write(f"checkpoint: {out}\n")
    return result


def read_inputs(model, input_path: Path, names: list[str] | None = None):
    """The model's inputs (or those named) from an .npz (arrays named as the inputs, or 'x')
    or an .npy; only those members are read, each checked before it is made (data/npyfile.py)."""
    from ..data import load_arrays
    from ..data.npyfile import NpzReader, file_head

    head = file_head(input_path, DataError)
    if not head.startswith(b"PK"):
        return load_arrays(input_path, y_key=None)[0]
    with NpzReader(input_path, DataError) as z:
        names = model.input_names if names is None else names
        if all(n in z for n in names):
            return [z.read(n) for n in names]
        if "x" in z:
            return z.read("x")
        raise DataError(f"{input_path}: expected arrays named {names} or 'x', found "
                        f"{z.names[:20]}{' ...' if len(z.names) > 20 else ''}")


def predict_checkpoint(ckpt: Path, input_path: Path, output: Path | None, stream=None,
                       device: str | None = None) -> np.ndarray:
    from ..saving import load_model

    stream = stream or sys.stdout
    if output:
        why = unwritable(output)
        if why:
            raise DataError(f"cannot write predictions to {output}: {why}")
    model = load_model(ckpt)
    if device:
        model.to(device)
    x = read_inputs(model, input_path)
    pred = model.predict(x)
    if output:
        first = pred if not isinstance(pred, list) else pred[0]
        atomic_write(output, lambda f: np.lib.format.write_array(f, np.asarray(first), allow_pickle=False),
                     DataError, "predictions")
        more = f" (the first of {len(pred)} outputs)" if isinstance(pred, list) else ""
        stream.write(f"wrote predictions {np.shape(first)}{more} to {output}\n")
    else:
        np.set_printoptions(precision=4, suppress=True, threshold=200)
        stream.write(f"{pred}\n")
    return pred
