"""SimpleRNN on the CPU: Recurrent's paths around kernels/cpu/simplernn.py (math: layers/simplernn.py)."""

from __future__ import annotations

from ...kernels.cpu.simplernn import simplernn_backward, simplernn_forward
from .recurrent import Recurrent


class SimpleRNN(Recurrent):
    name = "simplernn"

    def kernel_forward(self, inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec, keep=True,
                       last_only=False, derive=None, ready=None):
        out, hT, saved = simplernn_forward(U=U, h0=init[0], mask=mask, rmask=rmask, activation=opts["activation"],
                                           backwards=backwards, zero_output_for_mask=zero_out, keep=keep,
                                           last_only=last_only, **inp)
        return out, (hT,), saved

    def kernel_backward(self, saved, dout, dfinal, defer=False):     # (runs at once: its caller reads dxp)
        dxp, dU, dh0 = simplernn_backward(saved, dout, dfinal[0])
        return dxp, dU, (dh0,), None, None, None


CELL = SimpleRNN()
