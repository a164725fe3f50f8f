"""What flows between layers at run time.

Sequences are kept time-major, (steps, batch, features), so that each step of
a recurrent loop reads one contiguous (batch, features) block; vectors are
(batch, features); token ids (steps, batch). The mask, when there is one, is
(steps, batch) uint8: 1 for a real step, 0 for padding.
"""

from __future__ import annotations

import numpy as np

from ..kernels.cpu import buffers
from ..kernels.cpu.ops import gather_rows


class Act:
    """A layer's output: data (time-major for sequences) and the sequence mask.

    A model's float sequence input arrives batch-major (B, T, F); it is kept that way
    (``batch_major``) and made time-major only when a layer asks for ``data``, so that
    a recurrent layer can instead take it a chunk of steps at a time (``steps``) and
    inference memory does not grow with the sequence length.

    An embedding's output is kept as the table and the ids (``gathered``: data =
    E[ids]) until a layer asks for ``data``: an LSTM reading it may instead project the
    table once (see runtime/cpu/recurrent.py) and never make the (T, B, dim) rows.

    A concat's output is kept as its inputs (``parts``: data = their join along the
    features) until a layer asks for ``data``: a dense layer reading it multiplies each
    part by its rows of the kernel instead (runtime/cpu/dense.py)."""

    __slots__ = ("_data", "mask", "batch_major", "gathered", "parts")

    def __init__(self, data=None, mask=None, batch_major=None, gathered=None, parts=None):
        self._data, self.mask, self.batch_major, self.gathered = data, mask, batch_major, gathered
        self.parts = parts

    def unmade_parts(self):
        """The parts of a concat whose join has not been made (else None)."""
        return self.parts if self._data is None else None

    @property
    def data(self) -> np.ndarray:
        if self._data is None and self.gathered is not None:
            E, ids = self.gathered
            self._data = gather_rows(E, ids, buffers.empty(ids.shape + E.shape[1:], E.dtype))     # E[ids]
        if self._data is None and self.parts is not None:
            parts = self.parts
            out = buffers.empty(self.shape, np.result_type(*parts))
            self._data = np.concatenate(parts, axis=-1, out=out)
        if self._data is None:
            B, T, F = self.batch_major.shape
            self._data = buffers.empty((T, B, F), self.batch_major.dtype)
            self._data[...] = self.batch_major.transpose(1, 0, 2)
        return self._data

    @property
    def shape(self) -> tuple:
        """The (time-major) shape of data, without making it."""
        if self._data is None and self.gathered is not None:
            E, ids = self.gathered
            return ids.shape + E.shape[1:]
        if self._data is None and self.parts is not None:
            return self.parts[0].shape[:-1] + (sum(p.shape[-1] for p in self.parts),)
        if self._data is None:
            B, T, F = self.batch_major.shape
            return (T, B, F)
        return self._data.shape

    def view(self) -> np.ndarray:
        """data, or (not made yet) a time-major view of batch_major: no copy; its rows
        are strided, which the kernels' per-step products read in place."""
        if self._data is None and self.gathered is None and self.parts is None:
            return self.batch_major.transpose(1, 0, 2)
        return self.data

    def steps(self, t0: int, t1: int) -> np.ndarray:
        """data[t0:t1], time-major and contiguous."""
        if self._data is None and self.gathered is None and self.parts is None and \
                (t1 - t0) < self.batch_major.shape[1]:
            return np.ascontiguousarray(self.batch_major[:, t0:t1].transpose(1, 0, 2))
        return self.data[t0:t1]

    @property
    def seq(self) -> bool:
        if self._data is None and self.parts is not None:
            return self.parts[0].ndim == 3
        if self._data is None:
            return True
        return self.data.ndim == 3 or (self.data.ndim == 2 and self.data.dtype.kind in "iu")

    def __repr__(self) -> str:
        return f"Act(shape={self.shape}, masked={self.mask is not None})"


class TableGrad:
    """The gradient of a gathered Act (data = E[ids]) already summed by id: dE (vocab, dim),
    what the embedding's backward would make of the rows' gradient."""

    __slots__ = ("dE",)

    def __init__(self, dE: np.ndarray):
        self.dE = dE


def flat(a: np.ndarray) -> np.ndarray:
    """(T, B, F) or (B, F) as a 2-D (rows, F) view."""
    return a.reshape(-1, a.shape[-1])
