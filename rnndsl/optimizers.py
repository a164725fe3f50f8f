"""Keras's keras.optimizers under its name: `from rnndsl.optimizers import ...` (the code: rnndsl/train/optimizers.py)."""

from .train.optimizers import *  # noqa: F401,F403
from .train.optimizers import __all__  # noqa: F401
