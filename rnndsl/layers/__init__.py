"""Layer kinds of the language; importing this package registers them all."""

from . import batchnorm, bidirectional, dense, dropout, embed, gru, lstm, merge, repeat, simplernn  # noqa: F401
from .base import REGISTRY, LayerSpec

__all__ = ["REGISTRY", "LayerSpec"]
