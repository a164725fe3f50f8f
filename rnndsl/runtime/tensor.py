"""What flows between layers at run time.

Sequences are kept time-major, (steps, batch, features), so that each step of
a recurrent loop reads one contiguous (batch, features) block; vectors are
(batch, features); token ids (steps, batch). The mask, when there is one, is
(steps, batch) uint8: 1 for a real step, 0 for padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Act:
    data: np.ndarray
    mask: np.ndarray | None = None

    @property
    def seq(self) -> bool:
        return self.data.ndim == 3 or (self.data.ndim == 2 and self.data.dtype.kind in "iu")


def flat(a: np.ndarray) -> np.ndarray:
    """(T, B, F) or (B, F) as a 2-D (rows, F) view."""
    return a.reshape(-1, a.shape[-1])
