"""CPU kernels compiled with numba.

The recurrent cells (time-major, Keras weight layout and gate order) are used
through thin wrappers that take the input projection ``xp = x @ W + b``:

    simplernn_forward(xp, U, h0, ...)        -> (out, hT, saved)
    simplernn_backward(saved, dout, dhT)     -> (dxp, dU, dh0)
    lstm_forward(xp, U, h0, c0, ...)         -> (out, hT, cT, saved)
    lstm_backward(saved, dout, dhT, dcT)     -> (dxp, dU, dh0, dc0)
    gru_forward(xp, U, h0, b_rec, ...)       -> (out, hT, saved)
    gru_backward(saved, dout, dhT)           -> (dxp, dU, dh0, db_rec)

See each module's docstring for the math and activations.py for the
activation codes and the float32/float64 precision policy.
"""

import sys

from ... import elementwise
from ...caches import keep_compiled_code_here
from . import attention, step  # noqa: F401 - imported here so that their kernels' cache is placed below too
from .activations import ACTIVATIONS, activation_code
from .gru import GRUSaved, gru_backward, gru_forward
from .lstm import LSTMSaved, lstm_backward, lstm_forward
from .simplernn import SimpleRNNSaved, simplernn_backward, simplernn_forward

# compiled code goes to the per-user cache folder, never into the installation; the folder's
# name hashes these sources and the element-wise table the kernels' activations are made from
keep_compiled_code_here([m for name, m in list(sys.modules.items()) if name.startswith(__name__ + ".")]
                        + [elementwise])

__all__ = [
    "ACTIVATIONS",
    "activation_code",
    "GRUSaved",
    "gru_backward",
    "gru_forward",
    "LSTMSaved",
    "lstm_backward",
    "lstm_forward",
    "SimpleRNNSaved",
    "simplernn_backward",
    "simplernn_forward",
]
