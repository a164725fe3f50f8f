"""Runners: rnndsl and its peers (PyTorch, ONNX Runtime, Keras) set up for one workload.

A Runner holds ready-to-call closures over fixed data: `train()` does one
training step (forward, loss, backward, SGD update with learning rate 0.01),
`infer()` one inference step; for the stream workload `infer()` is one time
step of a stateful cell at batch 1. `infer_context()` wraps the timed
inference loop (torch.inference_mode for PyTorch). `train_mode()` and
`infer_mode()` run once before each timed block (PyTorch's train()/eval()).

The PyTorch models match the rnndsl specs layer for layer (sizes, batch_first,
last-step output for a recurrent layer without `seq`, (h, c) handed from the
encoder to the decoder in seq2seq). The layer-normalised LSTM (lnlstm) has no
PyTorch layer: it is a module with the per-step Python loop, scripted with
torch.jit.script, the way a PyTorch user writes a custom cell. The ONNX Runtime
runner runs the same PyTorch module, exported with torch.onnx.export, for
inference only. Keras runners are used only when Keras imports (Keras 3, or
tf.keras). bench/check_peers.py copies rnndsl's weights into each PyTorch peer
and compares the outputs.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .workloads import CLASSES, Workload

LR = 0.01


@dataclass
class Runner:
    framework: str
    infer: Callable[[], object] | None
    train: Callable[[], object] | None = None
    train_mode: Callable[[], None] = lambda: None
    infer_mode: Callable[[], None] = lambda: None
    infer_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    notes: list[str] = field(default_factory=list)
    model: object = None


# --- rnndsl ------------------------------------------------------------------------------

def rnndsl_version() -> str:
    import rnndsl
    return getattr(rnndsl, "__version__", "?")


def rnndsl_runner(wl: Workload, x, y, device: str = "cpu") -> Runner:
    import rnndsl

    m = rnndsl.compile(wl.spec, dtype="float32", seed=0, device=device)
    if wl.kind == "stream":
        return _rnndsl_stream(m, x)
    r = Runner("rnndsl", infer=lambda: m.predict_on_batch(x), model=m)
    if hasattr(m, "train_on_batch") and hasattr(m, "configure"):
        from rnndsl.train.optimizers import SGD

        try:
            m.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(learning_rate=LR), from_logits=True)
        except TypeError:       # an older configure() without from_logits
            m.configure(loss="sparse_categorical_crossentropy", optimizer=SGD(learning_rate=LR))
        r.train = lambda: m.train_on_batch(x, y)
        r.notes.append("train step: Model.train_on_batch (SGD lr 0.01)")
    else:
        params = m.executor.params
        lr = np.float32(LR)

        def train():
            loss, grads = m.loss_and_gradients(x, y, loss="sparse_categorical_crossentropy", from_logits=True)
            for p, g in zip(params, grads):
                if g is not None:
                    p -= lr * g
            return loss

        r.train = train
        r.notes.append("train step: loss_and_gradients + in-place SGD (no train_on_batch yet)")
    return r


def _rnndsl_stream(m, x_t) -> Runner:
    """Model.step(x_t) when rnndsl has it; otherwise no runner, and predict_on_batch on a
    one-step sequence is recorded separately as a stand-in (see rnndsl_stream_fallback)."""
    if not hasattr(m, "step"):
        r = Runner("rnndsl", infer=None)
        r.notes.append("Model.step does not exist yet: stream-step is n/a")
        return r
    m.step(x_t)                              # compile, and check that it takes (1, features)
    r = Runner("rnndsl", infer=lambda: m.step(x_t), model=m)
    r.notes.append("stream step: Model.step(x_t), x_t (1, 64)")
    return r


def rnndsl_stream_fallback(wl: Workload, x_t) -> Runner:
    """predict_on_batch of a (1, 1, 64) sequence through the stateful model: not the target's
    measure (that is Model.step), only a reference for what one step costs through the
    batch path."""
    import rnndsl

    m = rnndsl.compile(wl.spec, dtype="float32", seed=0)
    x = x_t[:, None, :]
    return Runner("rnndsl predict_on_batch(1 step)", infer=lambda: m.predict_on_batch(x))


# --- PyTorch -----------------------------------------------------------------------------

def torch_module():
    try:
        import torch
    except Exception:
        return None
    return torch


def _lnlstm_module(torch, features: int, units: int, eps: float = 1e-3):
    """A layer-normalised LSTM over a (B, T, features) batch, its last h (B, units): per step
    z = x_t W + h U, each gate's block of z normalised over the units (population variance,
    eps inside the square root) then times its gain plus its bias, gates i, f, g, o;
    c = f c + i g; h = o tanh(LN(c) gc + bc). The input projection of all steps is one
    product before the loop (as a PyTorch user would hoist it); gains 1, biases 0 but the
    forget gate's 1 (examples/lnlstm.rnn's init)."""
    nn = torch.nn
    F = torch.nn.functional

    class LNLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.units = units
            self.eps = eps
            self.wx = nn.Linear(features, 4 * units, bias=False)
            self.wh = nn.Linear(units, 4 * units, bias=False)
            self.gain = nn.Parameter(torch.ones(4, units))
            bias = torch.zeros(4, units)
            bias[1] = 1.0
            self.bias = nn.Parameter(bias)
            self.gain_c = nn.Parameter(torch.ones(units))
            self.bias_c = nn.Parameter(torch.zeros(units))

        def forward(self, x):
            b, steps = x.size(0), x.size(1)
            xp = self.wx(x).transpose(0, 1)                     # (T, B, 4u)
            h = torch.zeros(b, self.units, dtype=x.dtype)
            c = torch.zeros(b, self.units, dtype=x.dtype)
            for t in range(steps):
                z = (xp[t] + self.wh(h)).view(b, 4, self.units)
                z = F.layer_norm(z, [self.units], None, None, self.eps) * self.gain + self.bias
                i, f, g, o = z.unbind(1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(F.layer_norm(c, [self.units], self.gain_c, self.bias_c, self.eps))
            return h

    return LNLSTM()


def _torch_model(torch, name: str):
    nn = torch.nn

    class MnistLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(28, 64, batch_first=True)
            self.bn = nn.BatchNorm1d(64, eps=1e-3, momentum=0.01)     # Keras momentum 0.99
            self.fc = nn.Linear(64, CLASSES)

        def forward(self, x):
            _, (h, _) = self.rnn(x)
            return self.fc(self.bn(h[-1]))

    class TextLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(1000, 64)
            self.rnn = nn.LSTM(64, 128, batch_first=True)
            self.fc = nn.Linear(128, CLASSES)

        def forward(self, x):
            _, (h, _) = self.rnn(self.emb(x))
            return self.fc(h[-1])

    class StackGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(1000, 64)
            self.gru = nn.GRU(64, 256, batch_first=True)
            self.rnn = nn.RNN(256, 128, nonlinearity="tanh", batch_first=True)
            self.fc = nn.Linear(128, CLASSES)

        def forward(self, x):
            seq, _ = self.gru(self.emb(x))
            _, h = self.rnn(seq)
            return self.fc(h[-1])

    class BiLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn1 = nn.LSTM(10, 64, batch_first=True, bidirectional=True)
            self.rnn2 = nn.LSTM(128, 32, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(64, CLASSES)

        def forward(self, x):
            seq, _ = self.rnn1(x)
            _, (h, _) = self.rnn2(seq)
            return self.fc(torch.cat([h[0], h[1]], dim=1))     # Keras: [forward last, backward last]

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc_emb = nn.Embedding(1000, 64)
            self.enc = nn.LSTM(64, 64, batch_first=True)
            self.dec_emb = nn.Embedding(2000, 64)
            self.dec = nn.LSTM(64, 64, batch_first=True)
            self.fc = nn.Linear(64, CLASSES)

        def forward(self, src, tgt):
            _, state = self.enc(self.enc_emb(src))
            seq, _ = self.dec(self.dec_emb(tgt), state)
            return self.fc(seq).reshape(-1, CLASSES)            # per-step logits, (B*T, 10)

    class BigLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(512, 512, batch_first=True)
            self.fc = nn.Linear(512, CLASSES)

        def forward(self, x):
            _, (h, _) = self.rnn(x)
            return self.fc(h[-1])

    class TextGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(1000, 64)
            self.gru = nn.GRU(64, 128, batch_first=True)     # reset-after, as Keras's default
            self.fc = nn.Linear(128, CLASSES)

        def forward(self, x):
            _, h = self.gru(self.emb(x))
            return self.fc(h[-1])

    class AttnSeq2Seq(Seq2Seq):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(128, CLASSES)            # over [decoder output, context]

        def forward(self, src, tgt):
            enc, state = self.enc(self.enc_emb(src))
            dec, _ = self.dec(self.dec_emb(tgt), state)
            # rnndsl's attention(dec, enc): S = dec enc^T (no scale), A = softmax over the
            # encoder steps, context = A enc; then concat(dec, context) | dense
            a = torch.softmax(torch.bmm(dec, enc.transpose(1, 2)), dim=-1)
            ctx = torch.bmm(a, enc)
            return self.fc(torch.cat([dec, ctx], dim=-1)).reshape(-1, CLASSES)

    class LNLSTMText(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(1000, 64)
            self.rnn = _lnlstm_module(torch, 64, 128)
            self.fc = nn.Linear(128, CLASSES)

        def forward(self, x):
            return self.fc(self.rnn(self.emb(x)))

    def lstm_last(features, units):
        class LastLSTM(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.LSTM(features, units, batch_first=True)
                self.fc = nn.Linear(units, CLASSES)

            def forward(self, x):
                _, (h, _) = self.rnn(x)
                return self.fc(h[-1])
        return LastLSTM

    if name == "lnlstm":
        return torch.jit.script(LNLSTMText())        # the per-step loop compiled by TorchScript
    return {"mnist-lstm": MnistLSTM, "text-lstm": TextLSTM, "stack-gru": StackGRU, "bi-lstm": BiLSTM,
            "seq2seq": Seq2Seq, "big-lstm": BigLSTM, "text-gru": TextGRU, "attn-seq2seq": AttnSeq2Seq,
            "long": lstm_last(32, 64), "wide": lstm_last(256, 1024)}[name]()


def torch_runner(torch, wl: Workload, x, y) -> Runner:
    torch.manual_seed(0)
    if wl.kind == "stream":
        cell = torch.nn.LSTMCell(64, 128).eval()
        xt = torch.from_numpy(x)
        state = [(torch.zeros(1, 128), torch.zeros(1, 128))]

        def step():
            state[0] = cell(xt, state[0])
            return state[0][0]

        return Runner("torch", infer=step, infer_context=torch.inference_mode,
                      notes=["stream step: nn.LSTMCell with carried (h, c), inference_mode"])
    model = _torch_model(torch, wl.name)
    xs = [torch.from_numpy(np.ascontiguousarray(a)) for a in (x if isinstance(x, list) else [x])]
    yt = torch.from_numpy(np.asarray(y).reshape(-1))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    F = torch.nn.functional

    def train():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(*xs), yt)
        loss.backward()
        opt.step()
        return loss

    scripted = isinstance(model, torch.jit.ScriptModule)
    # a scripted module's graph optimised for training fails under inference_mode ("Inference
    # tensors cannot be saved for backward"): no_grad, as PyTorch's message advises
    r = Runner("torch", infer=lambda: model(*xs), train=train, train_mode=model.train,
               infer_mode=model.eval, infer_context=torch.no_grad if scripted else torch.inference_mode)
    if scripted:
        # TorchScript's profiling executor profiles a module's first calls in each mode and
        # then optimises it (seconds for lnlstm): done here, so that the timed warm-up is
        # what it is for the other peers
        for mode, fn, ctx in ((model.train, train, contextlib.nullcontext), (model.eval, r.infer, torch.no_grad)):
            mode()
            with ctx():
                for _ in range(3):
                    fn()
        r.notes.append("torch.jit.script module, inference under no_grad; 3 calls per mode before the warm-up "
                       "(TorchScript's profiling runs)")
    return r


# --- ONNX Runtime --------------------------------------------------------------------------

OPSET = 17


def ort_module():
    """(onnxruntime, torch) when both import (torch exports the models), else None."""
    try:
        import onnxruntime
        import torch
    except Exception:
        return None
    return onnxruntime, torch


def ort_version(ort) -> str:
    return getattr(ort, "__version__", "?")


def _lstm_step_module(torch):
    """(x_t, h, c) -> (h', c') through nn.LSTMCell(64, 128): the state as plain graph inputs
    and outputs, so that the exported model can be stepped."""
    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = torch.nn.LSTMCell(64, 128)

        def forward(self, x, h, c):
            return self.cell(x, (h, c))

    return Step()


def _onnx_bytes(torch, module, args: tuple, names: list[str], outputs: list[str]) -> bytes:
    buf = io.BytesIO()
    # the exporter's warnings (batch_first LSTM and the like) would bury the table
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the TorchScript exporter: it takes nn.LSTM/GRU/RNN to ONNX's fused recurrent ops
        torch.onnx.export(module, args, buf, input_names=names, output_names=outputs,
                          opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def _ort_session(ort, model: bytes, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])


def ort_runner(ort, torch, wl: Workload, x, y, threads: int) -> Runner:
    """The PyTorch peer's module for wl in eval mode, exported to ONNX (opset 17) in memory and
    run by an InferenceSession on the CPU provider with `threads` intra-op threads; inference
    only (train is None). For stream-step, one LSTMCell step with (h, c) fed back each call."""
    torch.manual_seed(0)
    if wl.kind == "stream":
        step = _lstm_step_module(torch).eval()
        zeros = np.zeros((1, 128), np.float32)
        args = (torch.from_numpy(x), torch.from_numpy(zeros), torch.from_numpy(zeros))
        sess = _ort_session(ort, _onnx_bytes(torch, step, args, ["x", "h", "c"], ["h1", "c1"]), threads)
        feed = {"x": np.ascontiguousarray(x, np.float32), "h": zeros, "c": zeros.copy()}

        def infer():
            h, c = sess.run(None, feed)
            feed["h"], feed["c"] = h, c
            return h

        return Runner("ort", infer=infer,
                      notes=[f"stream step: exported nn.LSTMCell, (h, c) as inputs and outputs, opset {OPSET}"])
    module = _torch_model(torch, wl.name).eval()
    arrays = [np.ascontiguousarray(a) for a in (x if isinstance(x, list) else [x])]
    names = [f"in{i}" for i in range(len(arrays))]
    model = _onnx_bytes(torch, module, tuple(torch.from_numpy(a) for a in arrays), names, ["logits"])
    sess = _ort_session(ort, model, threads)
    feed = dict(zip(names, arrays))
    return Runner("ort", infer=lambda: sess.run(None, feed), train=None,
                  notes=[f"inference: the PyTorch module, torch.onnx.export opset {OPSET}, CPUExecutionProvider"])


# --- Keras -------------------------------------------------------------------------------

def keras_module():
    try:
        import keras
        return keras
    except Exception:
        pass
    try:
        from tensorflow import keras
        return keras
    except Exception:
        return None


def _keras_model(keras, name: str):
    L = keras.layers
    if name == "mnist-lstm":
        x = keras.Input((28, 28))
        return keras.Model(x, L.Dense(CLASSES)(L.BatchNormalization()(L.LSTM(64)(x))))
    if name == "text-lstm":
        x = keras.Input((100,), dtype="int32")
        return keras.Model(x, L.Dense(CLASSES)(L.LSTM(128)(L.Embedding(1000, 64)(x))))
    if name == "stack-gru":
        x = keras.Input((100,), dtype="int32")
        h = L.GRU(256, return_sequences=True)(L.Embedding(1000, 64)(x))
        return keras.Model(x, L.Dense(CLASSES)(L.SimpleRNN(128)(h)))
    if name == "bi-lstm":
        x = keras.Input((5, 10))
        h = L.Bidirectional(L.LSTM(64, return_sequences=True))(x)
        return keras.Model(x, L.Dense(CLASSES)(L.Bidirectional(L.LSTM(32))(h)))
    if name == "seq2seq":
        src = keras.Input((20,), dtype="int32")
        tgt = keras.Input((20,), dtype="int32")
        _, h, c = L.LSTM(64, return_state=True)(L.Embedding(1000, 64)(src))
        dec = L.LSTM(64, return_sequences=True)(L.Embedding(2000, 64)(tgt), initial_state=[h, c])
        return keras.Model([src, tgt], L.Dense(CLASSES)(dec))
    if name == "big-lstm":
        x = keras.Input((100, 512))
        return keras.Model(x, L.Dense(CLASSES)(L.LSTM(512)(x)))
    if name == "text-gru":
        x = keras.Input((100,), dtype="int32")
        return keras.Model(x, L.Dense(CLASSES)(L.GRU(128)(L.Embedding(1000, 64)(x))))
    if name in ("long", "wide"):
        steps, features, units = (2000, 32, 64) if name == "long" else (50, 256, 1024)
        x = keras.Input((steps, features))
        return keras.Model(x, L.Dense(CLASSES)(L.LSTM(units)(x)))
    if name == "attn-seq2seq":
        src = keras.Input((20,), dtype="int32")
        tgt = keras.Input((20,), dtype="int32")
        enc, h, c = L.LSTM(64, return_sequences=True, return_state=True)(L.Embedding(1000, 64)(src))
        dec = L.LSTM(64, return_sequences=True)(L.Embedding(2000, 64)(tgt), initial_state=[h, c])
        ctx = L.Attention()([dec, enc])
        return keras.Model([src, tgt], L.Dense(CLASSES)(L.Concatenate()([dec, ctx])))
    raise KeyError(name)


# workloads without a Keras peer, and why
KERAS_MISSING = {"lnlstm": "Keras has no layer-normalised LSTM layer (a custom Keras cell is not a peer "
                           "the existing structure has)"}


def keras_runner(keras, wl: Workload, x, y) -> Runner:
    if wl.name in KERAS_MISSING:
        raise NotImplementedError(KERAS_MISSING[wl.name])
    if wl.kind == "stream":
        cell = keras.layers.LSTMCell(128)
        xt = keras.ops.convert_to_tensor(x) if hasattr(keras, "ops") else x
        zeros = np.zeros((1, 128), np.float32)
        state = [[keras.ops.convert_to_tensor(zeros) if hasattr(keras, "ops") else zeros] * 2]

        def step():
            h, state[0] = cell(xt, state[0])
            return h

        return Runner("keras", infer=step, notes=["stream step: keras.layers.LSTMCell called eagerly"])
    model = _keras_model(keras, wl.name)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LR),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    xk = [a.astype(np.int32) if a.dtype.kind == "i" else a for a in (x if isinstance(x, list) else [x])]
    xk = xk if len(xk) > 1 else xk[0]
    return Runner("keras", infer=lambda: model.predict_on_batch(xk), train=lambda: model.train_on_batch(xk, y))


def keras_version(keras) -> str:
    v = getattr(keras, "__version__", "?")
    try:
        backend = keras.backend.backend()
    except Exception:
        backend = "tensorflow"
    return f"{v} ({backend})"
