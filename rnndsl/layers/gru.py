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

import numpy as np

from ..kernels.cpu.gru import gru_backward, gru_forward
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

    def split_bias(self, opts, bias):
        # reset_after: row 0 joins the input projection, row 1 sits inside r * (h U_h + b_rh)
        if bias is not None and opts["reset_after"]:
            return bias[0], bias[1]
        return bias, None

    def join_bias(self, db_in, db_rec):
        return db_in if db_rec is None else np.stack([db_in, db_rec])

    def kernel_forward(self, inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec, keep=True,
                       last_only=False):
        out, hT, saved = gru_forward(U=U, h0=init[0], b_rec=b_rec, reset_after=opts["reset_after"], mask=mask,
                                     rmask=rmask, activation=opts["activation"],
                                     recurrent_activation=opts["recurrent_activation"],
                                     backwards=backwards, zero_output_for_mask=zero_out, keep=keep,
                                     last_only=last_only, **inp)
        return out, (hT,), saved

    def kernel_backward(self, saved, dout, dfinal):
        dxp, dU, dh0, db_rec = gru_backward(saved, dout, dfinal[0])
        return dxp, dU, (dh0,), db_rec, None, None
