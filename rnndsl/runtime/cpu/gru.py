"""GRU on the CPU: Recurrent's paths around kernels/cpu/gru.py (math: layers/gru.py)."""

from __future__ import annotations

import numpy as np

from ...kernels.cpu.gru import gru_backward, gru_forward
from .recurrent import Recurrent


class GRU(Recurrent):
    name = "gru"
    takes_table = True
    reads_rows = True

    def split_bias(self, opts, bias):
        # reset_after: row 0 joins the input projection, row 1 sits inside r * (h U_h + b_rh)
        if bias is not None and opts["reset_after"]:
            return bias[0], bias[1]
        return bias, None

    def join_bias(self, db_in, db_rec):
        return db_in if db_rec is None else np.stack([db_in, db_rec])

    def kernel_forward(self, inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec, keep=True,
                       last_only=False, derive=None, ready=None):
        out, hT, saved = gru_forward(U=U, h0=init[0], b_rec=b_rec, reset_after=opts["reset_after"], mask=mask,
                                     rmask=rmask, activation=opts["activation"],
                                     recurrent_activation=opts["recurrent_activation"],
                                     backwards=backwards, zero_output_for_mask=zero_out, keep=keep,
                                     last_only=last_only, **inp)
        return out, (hT,), saved

    def kernel_backward(self, saved, dout, dfinal, defer=False):     # (runs at once: its caller reads dxp)
        dxp, dU, dh0, db_rec, *table = gru_backward(saved, dout, dfinal[0])
        # with a table's rows as input: its gradient dT and the input bias's, in place of dW
        dT, db_in = table if table else (None, None)
        return dxp, dU, (dh0,), db_rec, dT, db_in


CELL = GRU()
