"""Compiling a spec's kernels ahead of its first run (`python -m rnndsl warmup SPEC`).

numba compiles a kernel the first time it is called with new argument types and caches the
result on disk; a run then spends its first tens of seconds compiling. warm_up makes those
calls on purpose: a train step and a prediction on a batch of the spec's own shape (from
its train section's data when it has one) and on a small batch (the last, partial batch of
an epoch takes the single-thread kernels where a full one is split across the cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RnnError
from ..train.sources import load_source


def _stand_in_inputs(model, batch: int) -> list[np.ndarray]:
    """Inputs of the model's declared types: token id 1 (every vocabulary has it), or zeros."""
    xs = []
    for node_id in model.graph.inputs:
        t = model.graph.nodes[node_id].out
        steps = t.steps or 8
        if t.is_tokens:
            xs.append(np.ones((batch, steps), np.int64))
        else:
            xs.append(np.zeros((batch, steps, t.features) if t.seq else (batch, t.features), np.float32))
    return xs


def warm_up(spec_path: Path) -> None:
    from .. import load

    spec_path = Path(spec_path)
    model = load(spec_path)
    cfg = dict(model.graph.train)
    batch = int(cfg.get("batch_size", 32))
    if "data" in cfg and "loss" in cfg:
        split = load_source(model, cfg["data"], seed=int(cfg.get("seed", 0)), base=spec_path.parent)
        batch = split.batch_size or batch
        xs, y = list(split.x_train), split.y_train
        model.configure()
        for n in ([batch, max(1, batch // 4)] if not split.batch_size else [batch]):
            part = [x[:n] for x in xs]
            model.train_on_batch(part if len(part) > 1 else part[0], y[:n])
            model.predict_on_batch(part if len(part) > 1 else part[0])
            model.reset_states()
        return
    for n in (batch, max(1, batch // 4)):
        xs = _stand_in_inputs(model, n)
        try:
            model.predict_on_batch(xs if len(xs) > 1 else xs[0])
        except RnnError:
            pass                # an input the stand-in cannot fill (a fixed stateful batch): compiled so far
        model.reset_states()
