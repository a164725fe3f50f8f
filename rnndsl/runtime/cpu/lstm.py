"""LSTM on the CPU: Recurrent's paths around kernels/cpu/lstm.py (math: layers/lstm.py)."""

from __future__ import annotations

from ...kernels.cpu.lstm import lstm_backward, lstm_forward
from .recurrent import Recurrent


class LSTM(Recurrent):
    name = "lstm"
    takes_table = True
    reads_rows = True
    trains_on_rows = True
    in_kernel_dx = True

    def kernel_forward(self, inp, U, init, mask, rmask, opts, backwards, zero_out, b_rec, keep=True,
                       last_only=False, derive=None, ready=None):
        out, hT, cT, saved = lstm_forward(U=U, h0=init[0], c0=init[1], mask=mask, rmask=rmask,
                                          activation=opts["activation"],
                                          recurrent_activation=opts["recurrent_activation"],
                                          backwards=backwards, zero_output_for_mask=zero_out, keep=keep,
                                          last_only=last_only, derive=derive, ready=ready, **inp)
        return out, (hT, cT), saved

    def run_fits(self, run, X, init, ids=None) -> bool:
        return run.fits(X, init[0], init[1], ids)

    def run_again(self, run, X, init, ids=None):
        out, hT, cT = run.again(X, init[0], init[1], ids)
        return out, (hT, cT)

    def kernel_backward(self, saved, dout, dfinal, defer=False, W=None):
        if saved.X.shape[0] == 0:           # (the caller reads dxp: dK is not made here)
            dxp, dU, dh0, dc0 = lstm_backward(saved, dout, dfinal[0], dfinal[1])
            return dxp, dU, (dh0, dc0), None, None, None
        # x @ W (or the table's rows) was taken inside the time loop: so are its kernel's (the
        # table's) and bias gradients, and with W the input's
        dxp, dU, dh0, dc0, dW, db, *dX = lstm_backward(saved, dout, dfinal[0], dfinal[1], weights=True, W=W,
                                                       defer=defer)
        return (dxp, dU, (dh0, dc0), None, dW, db) + tuple(dX)


CELL = LSTM()
