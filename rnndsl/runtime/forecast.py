"""Recursive forecasting: a model that maps a window of a series' features to the next
value of some of them, rolled forward on its own predictions.

With history rows h_1..h_T (F features each), targets the K features the output
predicts and u_t the other features' known future values:

    y_1 = f(h_1..h_T)                       (every layer's state after the history)
    x_{T+k} = (y_k at the target features, u_{T+k} at the others)
    y_{k+1} = f(h_1..h_T, x_{T+1}..x_{T+k})  = one step from the states after x_{T+k-1}

The model runs over the history once, then one compiled step per forecast step with
its recurrent states carried (runtime/decode.py's Stepper), never the whole window
again; y_1 is what predict gives on the history. Every layer after the input must work
step by step (no bidirectional or go_backwards layer, no pooling over the steps).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import DataError
from .decode import Stepper


class Forecaster(Stepper):
    """A Stepper over a model's one float-sequence input, its one output read as the next
    value of the input features at `targets` (positions among the input's features)."""

    def __init__(self, executor, targets: list[int] | None = None):
        g = executor.graph
        names = [g.nodes[i].name for i in g.inputs]
        if len(g.inputs) != 1:
            raise DataError(f"forecast needs a model with one input, a series' windows; this one takes "
                            f"{len(g.inputs)} ({', '.join(names)})")
        inp = g.inputs[0]
        t = g.nodes[inp].out
        if t.is_tokens or not t.seq:
            raise DataError(f"forecast needs a sequence of feature vectors as input; {names[0]!r} is {t}")
        if len(g.outputs) != 1:
            raise DataError(f"forecast needs a model with one output, the next value(s); this one has "
                            f"{len(g.outputs)} ({', '.join(o.name for o in g.outputs)})")
        out = g.outputs[0]
        ot = g.type_of(out.ref)
        if ot.is_tokens:
            raise DataError(f"forecast: output {out.name!r} gives token ids, not values to feed back")
        F, K = t.features, ot.features
        if targets is None:
            if K != F:
                raise DataError(f"forecast: output {out.name!r} gives {K} value(s) per step and input {names[0]!r} "
                                f"takes {F} feature(s): say which input features the outputs are, targets=[...] "
                                "(positions among the input's features)")
            targets = list(range(F))
        items = list(targets) if isinstance(targets, (list, tuple, np.ndarray)) else None
        if items is None or not all(isinstance(j, numbers.Integral) and not isinstance(j, bool) for j in items):
            raise DataError(f"forecast: targets must be a list of feature positions (whole numbers), got "
                            f"{str(targets)[:60]!r}")
        targets = [int(j) for j in items]
        if len(targets) != K:
            raise DataError(f"forecast: targets names {len(targets)} input feature(s) but output {out.name!r} "
                            f"gives {K} value(s) per step")
        if len(set(targets)) != K or any(not 0 <= j < F for j in targets):
            raise DataError(f"forecast: targets must be distinct positions among the {F} features of input "
                            f"{names[0]!r} (0..{F - 1}), got {targets}")
        super().__init__(executor, [inp])
        self.input, self.output = inp, out
        self.steps_declared = t.steps
        self.features = F
        self.targets = targets
        self.others = [j for j in range(F) if j not in targets]

    def _prediction(self, values) -> np.ndarray:
        a = self.ex.host_output(values[(self.output.ref.node, self.output.ref.port)])
        return a[:, -1] if a.ndim == 3 else a

    def forecast(self, history: np.ndarray, steps: int, future: np.ndarray | None) -> np.ndarray:
        """(B, steps, K) forecasts after history (B, T, F); future (B, >= steps - 1, F - K) the
        non-target features at the forecast's times."""
        B = history.shape[0]
        values, ctx = self.start([])
        pred = self._prediction(self.run(values, ctx, {self.input: history}))
        out = np.empty((B, steps, len(self.targets)), dtype=pred.dtype)
        x = np.empty((B, 1, self.features), dtype=history.dtype)
        for k in range(steps):
            out[:, k] = pred
            if k == steps - 1:
                break
            x[:, 0, self.targets] = pred
            if self.others:
                x[:, 0, self.others] = future[:, k]
            pred = self._prediction(self.run(values, ctx, {self.input: x}))
        return out
