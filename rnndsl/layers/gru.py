"""GRU, gates in Keras's order z, r, h:

    z = ra(x W_z + h_{t-1} U_z + b_z)
    r = ra(x W_r + h_{t-1} U_r + b_r)
    reset_after=true (default):  hh = act(x W_h + b_h + r * (h_{t-1} U_h + b_rh))
    reset_after=false:           hh = act(x W_h + (r * h_{t-1}) U_h + b_h)
    h_t = z * h_{t-1} + (1 - z) * hh

Weights: kernel (features, 3u), recurrent_kernel (u, 3u), bias (2, 3u) when
reset_after (row 0 input bias, row 1 recurrent bias) and (3u,) otherwise.
"""

from __future__ import annotations

from .base import Opt, register
from .recurrent import GATED_OPTIONS, RecurrentSpec


@register
class GRU(RecurrentSpec):
    name = "gru"
    keras_class = "GRU"
    keras_name = "gru"
    options = {**GATED_OPTIONS, "reset_after": Opt("bool", True)}
    gates = 3
    state_names = ("h",)

    def bias_shape(self, opts):
        u = opts["units"]
        return (2, 3 * u) if opts["reset_after"] else (3 * u,)
