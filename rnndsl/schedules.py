"""Keras's keras.schedules under its name: `from rnndsl.schedules import ...` (the code: rnndsl/train/schedules.py)."""

from .train.schedules import *  # noqa: F401,F403
from .train.schedules import __all__  # noqa: F401
