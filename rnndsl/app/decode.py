"""`python -m rnndsl decode CKPT`: generate token sequences with a trained model (Model.decode)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import DataError


def token_rows(text: str, where: str) -> np.ndarray:
    """Lines of whitespace-separated token ids -> (rows, steps) int64; every line as long."""
    rows = []
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append([int(w) for w in line.split()])
        except ValueError:
            bad = next(w for w in line.split() if not w.lstrip("-").isdigit())
            raise DataError(f"{where}, line {k}: {bad!r} is not a token id (a whole number)") from None
        if len(rows[-1]) != len(rows[0]):
            raise DataError(f"{where}, line {k}: {len(rows[-1])} token(s), but the first line has {len(rows[0])}; "
                            "every line is one sequence of the same length")
    if not rows:
        raise DataError(f"{where} holds no token ids")
    try:
        return np.array(rows, dtype=np.int64)
    except OverflowError:
        raise DataError(f"{where}: a token id past the 64-bit range") from None


def read_decode_inputs(model, input_path: Path):
    """An .npz/.npy (as `run --input`) or a text file of token ids, one sequence per line."""
    from .runner import read_inputs

    if input_path.suffix in (".npz", ".npy"):
        # an encoder-decoder's decoder input is its last (Model.decode): generated, not read
        names = model.input_names[:-1] if len(model.input_names) > 1 else model.input_names
        return read_inputs(model, input_path, names)
    try:
        text = input_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{input_path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return token_rows(text, str(input_path))


def decode_checkpoint(ckpt: Path, tokens: str | None, input_path: Path | None, stream=None,
                      device: str | None = None, as_json: bool = False, **options) -> tuple:
    from ..saving import load_model

    stream = stream or sys.stdout
    model = load_model(ckpt)
    if device:
        model.to(device)
    x = token_rows(tokens, "--tokens") if tokens is not None else read_decode_inputs(model, input_path)
    out, scores = model.decode(x, return_scores=True, **options)
    if as_json:
        json.dump([{"tokens": row.tolist(), "score": float(s)} for row, s in zip(out, scores)], stream)
        stream.write("\n")
    else:
        for row in out:
            stream.write(" ".join(map(str, row.tolist())) + "\n")
    return out, scores
