#!/usr/bin/env python
"""Do the PyTorch, ONNX Runtime and Keras peers compute rnndsl's function? Copies an rnndsl
model's weights into the workload's PyTorch peer (and its ONNX export), and into its Keras
peer where Keras imports, and compares the logits of an inference step on the same data.

    python bench/check_peers.py                      # every workload with a weight mapping
    python bench/check_peers.py --only lnlstm,attn-seq2seq

Mappings (rnndsl keeps Keras's layouts): a kernel (in, out) is a torch weight (out, in)
transposed; LSTM gates i, f, c, o are PyTorch's i, f, g, o, rnndsl's one bias goes to
bias_ih with bias_hh zero; GRU gates z, r, h (Keras) are PyTorch's r, z, n, rnndsl's two
bias rows (input, recurrent: reset-after) go to bias_ih and bias_hh. The lnlstm cell's
W_i.. W_o and U_i.. U_o stack into the scripted module's wx and wh, its gains and biases
into the (4, units) gain and bias in the gate order i, f, g, o. The weights are moved off
their init first (gains 1 and biases 0 would test less). Prints the largest absolute
difference per peer in float32, rnndsl against PyTorch both in float64 (the same math
agrees to rounding there), and PyTorch's own float32 error; exits 1 when float64 differs
by more than 1e-9 of the logits' scale, or a float32 peer by more than --tol of it and
more than 4x PyTorch's own float32 error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _lstm(torch, layer, w: dict, prefix: str) -> None:
    layer.weight_ih_l0.copy_(torch.from_numpy(w[prefix + "/kernel"].T.copy()))
    layer.weight_hh_l0.copy_(torch.from_numpy(w[prefix + "/recurrent_kernel"].T.copy()))
    layer.bias_ih_l0.copy_(torch.from_numpy(w[prefix + "/bias"]))
    layer.bias_hh_l0.zero_()


def _gru(torch, layer, w: dict, prefix: str) -> None:
    import numpy as np

    u = layer.hidden_size
    perm = np.r_[u:2 * u, 0:u, 2 * u:3 * u]             # Keras z, r, h -> PyTorch r, z, n
    layer.weight_ih_l0.copy_(torch.from_numpy(w[prefix + "/kernel"][:, perm].T.copy()))
    layer.weight_hh_l0.copy_(torch.from_numpy(w[prefix + "/recurrent_kernel"][:, perm].T.copy()))
    b = w[prefix + "/bias"]
    layer.bias_ih_l0.copy_(torch.from_numpy(b[0][perm].copy()))
    layer.bias_hh_l0.copy_(torch.from_numpy(b[1][perm].copy()))


def _dense(torch, layer, w: dict, prefix: str = "dense") -> None:
    layer.weight.copy_(torch.from_numpy(w[prefix + "/kernel"].T.copy()))
    layer.bias.copy_(torch.from_numpy(w[prefix + "/bias"]))


def _emb(torch, layer, w: dict, prefix: str) -> None:
    layer.weight.copy_(torch.from_numpy(w[prefix + "/embeddings"]))


def _lnlstm(torch, rnn, w: dict, prefix: str = "rnn") -> None:
    import numpy as np

    gates = "ifgo"
    rnn.wx.weight.copy_(torch.from_numpy(np.concatenate([w[f"{prefix}/W{g}"] for g in gates], 1).T.copy()))
    rnn.wh.weight.copy_(torch.from_numpy(np.concatenate([w[f"{prefix}/U{g}"] for g in gates], 1).T.copy()))
    rnn.gain.copy_(torch.from_numpy(np.stack([w[f"{prefix}/g{g}"] for g in gates])))
    rnn.bias.copy_(torch.from_numpy(np.stack([w[f"{prefix}/b{g}"] for g in gates])))
    rnn.gain_c.copy_(torch.from_numpy(w[f"{prefix}/gc"]))
    rnn.bias_c.copy_(torch.from_numpy(w[f"{prefix}/bc"]))


def load(torch, name: str, module, w: dict) -> None:
    """rnndsl's weights (name -> array) into the PyTorch peer of workload `name`."""
    m = module
    if name in ("text-lstm", "long", "wide", "big-lstm"):
        if name == "text-lstm":
            _emb(torch, m.emb, w, "embedding")
        _lstm(torch, m.rnn, w, "lstm")
    elif name == "text-gru":
        _emb(torch, m.emb, w, "embedding")
        _gru(torch, m.gru, w, "gru")
    elif name in ("seq2seq", "attn-seq2seq"):
        _emb(torch, m.enc_emb, w, "embedding")
        _emb(torch, m.dec_emb, w, "embedding_1")
        _lstm(torch, m.enc, w, "enc")
        _lstm(torch, m.dec, w, "dec")
    elif name == "lnlstm":
        _emb(torch, m.emb, w, "embedding")
        _lnlstm(torch, m.rnn, w)
    else:
        raise KeyError(f"no weight mapping for {name}")
    _dense(torch, m.fc, w)


MAPPED = ("text-lstm", "text-gru", "seq2seq", "attn-seq2seq", "lnlstm", "long", "wide")
KERAS_CHECKED = ("mnist-lstm", "text-lstm", "text-gru", "stack-gru", "bi-lstm", "seq2seq", "attn-seq2seq", "long",
                 "wide", "big-lstm")


def check(name: str, threads: int) -> dict:
    """Largest |rnndsl - peer| of the logits per peer, and the logits' scale."""
    import numpy as np
    import rnndsl

    from bench import peers
    from bench.workloads import BY_NAME

    wl = BY_NAME[name]
    x, _ = wl.make_data(np.random.default_rng(0))
    m = rnndsl.compile(wl.spec, dtype="float32", seed=0)
    rng = np.random.default_rng(1)      # weights off their init (gains 1, biases 0 would test less)
    m.set_weights([(a + 0.1 * rng.standard_normal(a.shape)).astype(np.float32) for a in m.get_weights()])
    w = dict(zip(m.weight_names(), m.get_weights()))
    ref = np.asarray(m.predict_on_batch(x), np.float32).reshape(-1, 10)
    torch = peers.torch_module()
    module = peers._torch_model(torch, name).eval()
    with torch.no_grad():
        load(torch, name, module, w)
    arrays = [np.ascontiguousarray(a) for a in (x if isinstance(x, list) else [x])]
    with torch.inference_mode():
        got_torch = module(*[torch.from_numpy(a) for a in arrays]).numpy().reshape(-1, 10)
    out = {"scale": float(np.abs(ref).max()), "torch": float(np.abs(got_torch - ref).max())}
    # the same function exactly? rnndsl in float64 against the module in float64 (float32
    # rounding alone moves the layer-normalised LSTM ~1e-3 over 100 steps, on either side)
    m64 = rnndsl.compile(wl.spec, dtype="float64", seed=0)
    m64.set_weights([a.astype(np.float64) for a in m.get_weights()])
    ref64 = np.asarray(m64.predict_on_batch(x), np.float64).reshape(-1, 10)
    module.double()
    with torch.no_grad():
        load(torch, name, module, {k: v.astype(np.float64) for k, v in w.items()})
    with torch.inference_mode():
        got64 = module(*[torch.from_numpy(a if a.dtype.kind == "i" else a.astype(np.float64))
                         for a in arrays]).numpy().reshape(-1, 10)
    module.float()
    with torch.no_grad():
        load(torch, name, module, w)
    out["float64"] = float(np.abs(got64 - ref64).max())
    out["torch float32 vs float64"] = float(np.abs(got_torch - got64).max())
    ort = peers.ort_module()
    if ort is not None:
        names = [f"in{i}" for i in range(len(arrays))]
        model = peers._onnx_bytes(torch, module, tuple(torch.from_numpy(a) for a in arrays), names, ["logits"])
        sess = peers._ort_session(ort[0], model, threads)
        got_ort = sess.run(None, dict(zip(names, arrays)))[0].reshape(-1, 10)
        out["ort"] = float(np.abs(got_ort - ref).max())
    return out


def check_keras(keras, name: str) -> dict | None:
    """Largest |rnndsl - Keras| of the logits, the weights moved into the Keras peer unchanged
    (rnndsl keeps Keras's order and layouts: set_weights of get_weights), and the logits'
    scale; None where the workload has no Keras peer."""
    import numpy as np
    import rnndsl

    from bench import peers
    from bench.workloads import BY_NAME

    wl = BY_NAME[name]
    if name in peers.KERAS_MISSING or wl.kind == "stream":
        return None
    x, _ = wl.make_data(np.random.default_rng(0))
    m = rnndsl.compile(wl.spec, dtype="float32", seed=0)
    rng = np.random.default_rng(1)
    weights = [(a + 0.1 * rng.standard_normal(a.shape)).astype(np.float32) for a in m.get_weights()]
    m.set_weights(weights)
    ref = np.asarray(m.predict_on_batch(x), np.float32).reshape(-1, 10)
    km = peers._keras_model(keras, name)
    km.set_weights(weights)
    xs = [a.astype(np.int32) if a.dtype.kind == "i" else a for a in (x if isinstance(x, list) else [x])]
    got = np.asarray(km.predict_on_batch(xs if len(xs) > 1 else xs[0]), np.float32).reshape(-1, 10)
    return {"scale": float(np.abs(ref).max()), "keras": float(np.abs(got - ref).max())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(MAPPED))
    ap.add_argument("--keras", default=",".join(KERAS_CHECKED),
                    help="workloads whose Keras peer is checked, where Keras imports")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-4, help="largest relative difference (to the logits' scale)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench.run import set_threads

    set_threads(a.threads)
    from bench import peers

    bad = 0
    for name in [n.strip() for n in a.only.split(",") if n.strip()]:
        got = check(name, a.threads)
        diffs = {k: v for k, v in got.items() if k != "scale"}
        # float64 alike to 1e-9 of the scale; float32 peers within tol of it or 4x float32's own error
        limit = max(a.tol * got["scale"], 4 * got["torch float32 vs float64"])
        bad += got["float64"] > 1e-9 * got["scale"] or any(v > limit for k, v in diffs.items() if k in ("torch", "ort"))
        print(f"{name:<13} logits up to {got['scale']:.3g}; max |rnndsl - peer|: "
              + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()), flush=True)
    keras = peers.keras_module()
    if keras is None:
        print("keras: not importable (its peers unchecked)")
        return 1 if bad else 0
    print(f"keras {peers.keras_version(keras)}: the same weights, no mapping (rnndsl keeps Keras's layouts)")
    for name in [n.strip() for n in a.keras.split(",") if n.strip()]:
        got = check_keras(keras, name)
        if got is None:
            print(f"{name:<13} no Keras peer")
            continue
        bad += got["keras"] > a.tol * got["scale"]
        print(f"{name:<13} logits up to {got['scale']:.3g}; max |rnndsl - keras| {got['keras']:.2g}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
