"""Keras's keras.callbacks under its name: `from rnndsl.callbacks import ...` (the code: rnndsl/train/callbacks.py)."""

from .train.callbacks import *  # noqa: F401,F403
from .train.callbacks import __all__  # noqa: F401
