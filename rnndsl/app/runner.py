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
    if isinstance(split.y_test, list):          # several outputs: their metrics are in evaluate's report
        return {}
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


def _forecast_report(model, split) -> dict:
    """A time series' test windows: the model's mean absolute error against the naive
    forecast's (each window's last value of the target)."""
    pred = model.predict(split.x_test)
    pred = pred[:, -1] if pred.ndim == 3 else pred
    return {"test_forecast_mae": float(np.mean(np.abs(pred - split.y_test))),
            "test_naive_mae": float(np.mean(np.abs(split.naive_test - split.y_test)))}


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
               stream=None, log=None, resume=False) -> dict:
    """Train a spec on its data; `log`: a CSV file that gets one row per epoch (CSVLogger);
    `resume`: go on from the checkpoint `out` (weights, optimizer, epoch, shuffling) when it exists.
    Under mpiexec with several ranks, training is data-parallel (rnndsl.distributed): rank 0
    alone prints, evaluates and writes the checkpoint."""
    import io

    from .. import load
    from ..distributed import rank
    from ..saving import load_model
    from ..train.callbacks import CSVLogger

    stream = stream or sys.stdout
    lead = rank() == 0
    if not lead:                 # the other ranks train quietly and write nothing
        stream, quiet, log = io.StringIO(), True, None
    resume_from = (Path(out) if out else default_checkpoint(spec_path)) if resume else None
    if resume_from is not None and resume_from.is_file():
        model = load_model(resume_from)
        if model.source != spec_path.read_text(encoding="utf-8"):
            raise CheckpointError(f"--resume: {resume_from} was trained from another spec than {spec_path}")
        if device:
            model.to(device)
        stream.write(f"resuming from {resume_from} after epoch {model.epoch}\n")
    else:
        resume_from = None
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
    split = load_source(model, cfg["data"], seed=seed, base=spec_path.parent,
                        validation_split=cfg.get("validation_split", 0.0))
    batch_size = batch_size or split.batch_size or cfg.get("batch_size", 32)
    if split.batch_size and batch_size != split.batch_size:
        raise DataError(f"this data comes in {split.batch_size} parallel streams; batch_size must be "
                        f"{split.batch_size}, got {batch_size}")
    if model.train_config is None:       # a resumed checkpoint keeps its optimizer and its state
        model.configure()
    verbose = 0 if quiet else cfg.get("verbose", "auto")
    if not quiet:
        for note in split.notes:
            stream.write(f"data: {note}\n")
        stream.write(f"data: {split.n_train} training samples, {split.n_test} held out\n")
    early = cfg.get("patience")
    # a time series holds its validation windows out by time (split.validation) already
    vsplit = 0.0 if split.validation else cfg.get("validation_split", 0.0)
    t0 = time.perf_counter()
    previous = _catch_interrupt(model)
    try:
        history = model.fit(split.x_train, split.y_train, batch_size=batch_size, epochs=epochs,
                            validation_data=split.validation, validation_split=vsplit, shuffle=split.shuffle and
                            cfg.get("shuffle", True), seed=None if resume_from else seed, verbose=verbose,
                            initial_epoch=model.epoch if resume_from else 0,
                            early_stopping=early, callbacks=[CSVLogger(log)] if log else None)
    except TrainingError:
        if _finite_weights(model) and lead:
            model.save(out)
            stream.write(f"saved the last good weights to {out}\n")
        else:
            stream.write(f"the weights hold NaN or inf: nothing saved to {out}\n")
        raise
    except KeyboardInterrupt:
        if lead:
            model.save(out)
        stream.write(f"\ninterrupted: saved a checkpoint of epoch {model.epoch} to {out}\n")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    seconds = time.perf_counter() - t0
    result = {"epochs": len(history.epoch), "seconds": seconds}
    if not lead:
        return result
    if split.n_test == 0:
        stream.write("no held-out data (test_split=0): no test metrics\n")
    elif split.batch_size:
        result.update(_stateful_report(model, split, batch_size))
    else:
        test = model.evaluate(split.x_test, split.y_test, batch_size=batch_size, return_dict=True)
        result.update({f"test_{k}": v for k, v in test.items()})
        result.update(_sequence_report(model, split))
        if split.naive_test is not None:
            result.update(_forecast_report(model, split))
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


def _is_array_file(path: Path) -> bool:
    from ..data.npyfile import file_head

    head = file_head(path, DataError)
    return head.startswith(b"PK") or head.startswith(b"\x93NUMPY")


def read_text_lines(path: Path) -> tuple[list[str], list[int]]:
    """The texts of a UTF-8 file, one per line, and their line numbers; blank lines are
    skipped, as the text data sources skip them."""
    from ..data.text import read_utf8

    texts, lines = [], []
    for n, line in enumerate(read_utf8(path).split("\n"), 1):
        line = line.rstrip("\r")
        if line.strip():
            texts.append(line)
            lines.append(n)
    if not texts:
        raise DataError(f"{path} holds no text (every line is blank)")
    return texts, lines


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def label_rows(model, pred) -> list[dict]:
    """Per text: its label and that label's probability, and every label's probability, when
    the (first) output is a class distribution over the model's label names (softmax over
    them, or one sigmoid unit for two); else the output's values. Logits (from_logits, or
    values that are not probabilities when the checkpoint has no training settings) go
    through softmax or sigmoid first."""
    out = np.asarray(pred[0] if isinstance(pred, list) else pred, dtype=np.float64)
    labels = model.text_encoder.labels if model.text_encoder is not None else None
    cfg = model.train_config
    width = out.shape[1] if out.ndim == 2 else None
    if labels and width in (len(labels), 1) and (width > 1 or len(labels) == 2):
        if cfg is not None:
            logits = bool(cfg.from_logits[0])
        else:
            logits = bool(((out < 0) | (out > 1)).any()) or (width > 1 and not np.allclose(out.sum(1), 1, atol=1e-3))
        if width == 1:
            p1 = 1 / (1 + np.exp(-out[:, 0])) if logits else out[:, 0]
            probs = np.stack([1 - p1, p1], axis=1)
        else:
            probs = _softmax(out) if logits else out
        rows = []
        for p in probs:
            k = int(np.argmax(p))
            rows.append({"label": labels[k], "probability": float(p[k]),
                         "probabilities": {name: float(v) for name, v in zip(labels, p)}})
        return rows
    return [{"output": np.asarray(o).tolist()} for o in out]


def _clip_line(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def predict_texts(model, texts: list[str], lines: list[int], stream, as_json: bool):
    """Predict raw texts with the model's text encoder; print a label and its probability
    per text (tab-separated, then the text), or a JSON list."""
    import json

    pred = model.predict(texts)
    rows = label_rows(model, pred)
    if as_json:
        doc = [{"line": n, "text": t, **r} for n, t, r in zip(lines, texts, rows)]
        stream.write(json.dumps(doc, ensure_ascii=False) + "\n")
        return pred
    for t, r in zip(texts, rows):
        if "label" in r:
            stream.write(f"{r['label']}\t{r['probability']:.4f}\t{_clip_line(t)}\n")
        else:
            values = " ".join(f"{v:.4g}" for v in np.ravel(r["output"]))
            stream.write(f"{values}\t{_clip_line(t)}\n")
    return pred


def _checkpoint_model(ckpt: Path, output: Path | None, what: str, device: str | None):
    """The checkpoint's model on its device, once `output` (when given) is known writable:
    a bad path is reported before the work, not after it."""
    from ..saving import load_model

    if output:
        why = unwritable(output)
        if why:
            raise DataError(f"cannot write {what} to {output}: {why}")
    model = load_model(ckpt)
    if device:
        model.to(device)
    return model


def predict_checkpoint(ckpt: Path, input_path: Path | None, output: Path | None, stream=None,
                       device: str | None = None, texts: list[str] | None = None,
                       as_json: bool = False) -> np.ndarray:
    """Predict with a checkpoint: arrays from an .npz/.npy (printed, or written to
    ``output``), or raw text (``texts``, or a text file of one per line) for a model that
    carries a vocabulary, one label and probability printed per text."""
    stream = stream or sys.stdout
    model = _checkpoint_model(ckpt, output, "predictions", device)
    lines = list(range(1, len(texts) + 1)) if texts is not None else None
    if texts is None and model.text_encoder is not None and not _is_array_file(input_path):
        texts, lines = read_text_lines(input_path)      # (without a vocabulary: read as arrays, or refused)
    if texts is not None:
        if model.text_encoder is None:
            raise DataError(f"{ckpt} carries no vocabulary to read text with (its model was not trained on a "
                            "text data source, or was saved by an older rnndsl); give --input an .npz of token ids")
        pred = predict_texts(model, texts, lines, stream, as_json)
    else:
        try:
            x = read_inputs(model, input_path)
        except DataError as e:
            if _is_array_file(input_path):
                raise
            raise DataError(f"{e}; and {ckpt} carries no vocabulary to read it as text, one per line (its model "
                            "was not trained on a text data source)") from None
        pred = model.predict(x)
        if as_json and not output:
            import json

            outs = pred if isinstance(pred, list) else [pred]
            stream.write(json.dumps({n: np.asarray(o).tolist() for n, o in zip(model.output_names, outs)}) + "\n")
            return pred
    if output:
        first = pred if not isinstance(pred, list) else pred[0]
        atomic_write(output, lambda f: np.lib.format.write_array(f, np.asarray(first), allow_pickle=False),
                     DataError, "predictions")
        more = f" (the first of {len(pred)} outputs)" if isinstance(pred, list) else ""
        (sys.stderr if texts is not None else stream).write(
            f"wrote predictions {np.shape(first)}{more} to {output}\n")
    elif texts is None:
        np.set_printoptions(precision=4, suppress=True, threshold=200)
        stream.write(f"{pred}\n")
    return pred


def forecast_checkpoint(ckpt: Path, input_path: Path, steps: int, output: Path | None, stream=None,
                        device: str | None = None) -> np.ndarray:
    """`run CKPT --forecast N --input FILE`: the next N values after the series in FILE.

    A .csv is read as the spec's csv(...) reads its data (the same columns, target, header
    and delimiter), and the model's window is its last rows (every sampling_rate-th); an
    .npz/.npy holds the history as arrays, (steps, features) or (batch, steps, features).
    Prints the forecast, or writes it to --output (.csv: a header of the target names and
    one row per step; else .npy)."""
    from ..data.series import read_series

    stream = stream or sys.stdout
    model = _checkpoint_model(ckpt, output, "the forecast", device)
    data = (model.graph.train or {}).get("data") or {}
    names = None
    if input_path.suffix.lower() == ".csv":
        if data.get("name") != "csv" or data.get("window") is None:
            raise DataError(f"{ckpt}: its spec's data is not a time series csv(..., window=), so a .csv history "
                            "has no columns to read; give the history as an .npz/.npy array (steps, features)")
        table = read_series(input_path, data.get("columns"), data.get("target"), data.get("skip_header", "auto"),
                            data.get("delimiter", ","))
        targets = table.target_positions()
        if targets is None:
            missing = [t for t in table.targets if t not in table.columns]
            raise DataError(f"{input_path}: the model predicts column(s) {missing}, which are not among its input "
                            f"columns {table.columns}: recursive forecasting feeds each prediction back as an "
                            "input, so the target columns must be input columns")
        window, rate = data["window"], data.get("sampling_rate", 1)
        need = (window - 1) * rate + 1
        if len(table.x) < need:
            raise DataError(f"{input_path} has {len(table.x)} row(s); the model's window of {window} steps"
                            + (f" {rate} rows apart" if rate > 1 else "") + f" takes {need}")
        history = table.x[len(table.x) - need::rate]
        names = table.targets
        forecast = model.forecast(history, steps, targets=targets)
    else:
        history = read_inputs(model, input_path)
        forecast = model.forecast(history[0] if isinstance(history, list) else history, steps)
    if names is None:
        names = [f"y{j}" for j in range(forecast.shape[-1])]
    if output and output.suffix.lower() == ".csv":
        if forecast.ndim != 2:
            raise DataError(f"a .csv holds one series' forecast; this one is {forecast.shape[0]} series: "
                            "write it to an .npy")
        text = ",".join(["step", *names]) + "\n" + "".join(
            ",".join([str(k + 1), *(f"{v:.6g}" for v in row)]) + "\n" for k, row in enumerate(forecast))
        atomic_write(output, lambda f: f.write(text.encode("utf-8")), DataError, "the forecast")
        stream.write(f"wrote the forecast of {steps} step(s) of {', '.join(names)} to {output}\n")
    elif output:
        atomic_write(output, lambda f: np.lib.format.write_array(f, forecast, allow_pickle=False),
                     DataError, "the forecast")
        stream.write(f"wrote the forecast {forecast.shape} to {output}\n")
    elif forecast.ndim == 2:
        stream.write("step  " + "  ".join(f"{n:>10}" for n in names) + "\n")
        for k, row in enumerate(forecast):
            stream.write(f"{k + 1:>4}  " + "  ".join(f"{v:>10.4f}" for v in row) + "\n")
    else:
        np.set_printoptions(precision=4, suppress=True, threshold=200)
        stream.write(f"{forecast}\n")
    return forecast
