"""rnndsl: recurrent networks from a declarative spec, compiled to numba loops.

    import rnndsl
    model = rnndsl.compile("embed(1000, 64) | lstm(32) | dense(10)")
    model.summary()
"""

from __future__ import annotations

from pathlib import Path

from .errors import (CheckpointError, DataError, DeviceError, RnnError, SpecError, TrainingError,
                     WeightsError)
from .model import Model, compile_spec
from . import callbacks, optimizers, schedules    # Keras's keras.callbacks, keras.optimizers, schedules

__version__ = "0.1.0"


def compile(text: str, dtype: str = "float32", seed: int = 0, file: str = "<spec>", device: str = "cpu",
            **kw) -> Model:
    """Parse and check a spec; returns a Model (raises SpecError listing every problem).

    device: "cpu", "cuda" or "auto" (CUDA when a GPU is visible)."""
    return compile_spec(text, file=file, dtype=dtype, seed=seed, device=device, **kw)


def load(path: str | Path, **kw) -> Model:
    """Compile the spec in a .rnn file."""
    from .lang.parser import read_spec

    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise RnnError(f"cannot read spec {path}: {e.strerror or e}") from None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x89HDF") or path.suffix in (".keras", ".h5", ".npz"):
        raise RnnError(f"{path} is not a text spec (.rnn) but a saved model: load it with rnndsl.load_model(path)"
                       + (", or `python -m rnndsl convert` it to a spec" if path.suffix == ".keras" else ""))
    try:
        text = read_spec(path)
    except OSError as e:
        raise RnnError(f"cannot read spec {path}: {e.strerror or e}") from None
    return compile(text, file=str(path), **kw)


def load_model(path, **kw) -> Model:
    """A model saved with Model.save(path): weights, optimizer state, epoch and generators;
    or a Keras 3 .keras file's model with its weights (dtype=, seed= as compile's)."""
    from .saving import load_model as _load_model

    return _load_model(path, **kw)


__all__ = ["load_model", "compile", "load", "Model", "callbacks", "optimizers", "schedules", "RnnError", "SpecError", "DataError", "WeightsError",
           "CheckpointError", "TrainingError", "DeviceError"]
