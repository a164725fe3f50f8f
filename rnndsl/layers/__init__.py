"""Layer kinds of the language; importing this package registers them all."""

from . import attention, batchnorm, bidirectional, dense, dropout, embed, gru, lstm, masking, merge, pooling, repeat, simplernn  # noqa: F401
from . import rnn  # noqa: F401  (rnn(cell): custom cells declared in the spec)
from .base import REGISTRY, LayerSpec

__all__ = ["REGISTRY", "LayerSpec"]
