"""A model's weights as a PyTorch state dict, and back, for the layer kinds PyTorch has.

Each layer maps to the module a PyTorch user writes for it, its keys prefixed by the
layer's name (`m.weight_names()`; `names=` renames), so that a module whose attributes
carry those names loads the dict as it is:

    embed                 nn.Embedding    weight = embeddings
    dense                 nn.Linear       weight = kernel^T, bias
    lstm                  nn.LSTM         weight_ih_l0 = kernel^T, weight_hh_l0 = recurrent_kernel^T,
                                          bias_ih_l0 = bias, bias_hh_l0 = 0 (gates i, f, g, o in both)
    gru (reset_after)     nn.GRU          gate blocks (z, r, h) -> (r, z, n); bias_ih_l0 = bias[0],
                                          bias_hh_l0 = bias[1]
    simplernn             nn.RNN          as lstm, one gate (nonlinearity tanh or relu)
    bidirectional(...)    bidirectional=True: the backward layer's as ..._l0_reverse
    batchnorm             nn.BatchNorm1d  weight = gamma, bias = beta, running_mean, running_var

Back from PyTorch an LSTM's or RNN's two biases are summed (bias = b_ih + b_hh, as every step
adds both). Both sides compute the same function; PyTorch's batch norm default eps (1e-5)
differs from Keras's (1e-3): set `eps` on the module to match the layer's epsilon.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..errors import RnnError, WeightsError

RECURRENT = ("lstm", "gru", "simplernn")
GATES = {"lstm": 4, "gru": 3, "simplernn": 1}


def _torch():
    try:
        import torch
    except ImportError:
        raise RnnError("PyTorch state dicts need PyTorch: pip install torch") from None
    return torch


def _gru_order(a, u: int, axis: int):
    """Keras's GRU gate blocks (z, r, h) as PyTorch's (r, z, n) along `axis`; the same swap undoes it."""
    z, r, h = (np.take(a, range(k * u, (k + 1) * u), axis=axis) for k in range(3))
    return np.concatenate([r, z, h], axis=axis)


def _check_recurrent(node, o) -> None:
    kind = node.kind
    if kind == "gru" and not o["reset_after"]:
        raise WeightsError(f"layer {node.name!r}: PyTorch's GRU is Keras's reset_after=true; this one has "
                           "reset_after=false")
    defaults = {"lstm": ("tanh", "sigmoid"), "gru": ("tanh", "sigmoid")}
    if kind in defaults and (o["activation"], o["recurrent_activation"]) != defaults[kind]:
        raise WeightsError(f"layer {node.name!r}: PyTorch's {kind.upper()} has the default activations only "
                           f"(tanh, sigmoid); this one has {o['activation']}, {o['recurrent_activation']}")
    if kind == "simplernn" and o["activation"] not in ("tanh", "relu"):
        raise WeightsError(f"layer {node.name!r}: PyTorch's RNN takes tanh or relu, not {o['activation']}")


def _recurrent_to(kind, o, W, suffix: str) -> dict:
    u = o["units"]
    kernel, rec = W[0], W[1]
    if kind == "gru":
        kernel, rec = _gru_order(kernel, u, 1), _gru_order(rec, u, 1)
    out = {f"weight_ih_l0{suffix}": kernel.T, f"weight_hh_l0{suffix}": rec.T}
    if o["use_bias"]:
        b = W[2]
        if kind == "gru":
            out[f"bias_ih_l0{suffix}"] = _gru_order(b[0], u, 0)
            out[f"bias_hh_l0{suffix}"] = _gru_order(b[1], u, 0)
        else:
            out[f"bias_ih_l0{suffix}"] = b
            out[f"bias_hh_l0{suffix}"] = np.zeros_like(b)
    return out


def _recurrent_from(kind, o, get, suffix: str) -> list:
    u = o["units"]
    kernel, rec = get(f"weight_ih_l0{suffix}").T, get(f"weight_hh_l0{suffix}").T
    if kind == "gru":
        kernel, rec = _gru_order(kernel, u, 1), _gru_order(rec, u, 1)
    out = [kernel, rec]
    if o["use_bias"]:
        b_ih, b_hh = get(f"bias_ih_l0{suffix}"), get(f"bias_hh_l0{suffix}")
        if kind == "gru":
            out.append(np.stack([_gru_order(b_ih, u, 0), _gru_order(b_hh, u, 0)]))
        else:
            out.append(b_ih + b_hh)
    return out


def _layers(model):
    """(node, its weights' slice in get_weights(), the plain layer for a bidirectional) per
    layer with weights, refusing the kinds PyTorch has no module for."""
    k = 0
    for node in model.graph.keras_order():
        n = len(node.weights)
        sl = slice(k, k + n)
        k += n
        if not n:
            continue
        if node.kind in ("embed", "dense", "batchnorm") or node.kind in RECURRENT:
            if node.kind in RECURRENT:
                _check_recurrent(node, node.opts)
            yield node, sl, None
        elif node.spec.recurrent and hasattr(node.spec, "inner"):
            inner = node.spec.inner(node)
            back = node.opts.get("backward_layer")
            if inner.kind not in RECURRENT or back is not None:
                raise WeightsError(f"layer {node.name!r}: PyTorch's bidirectional modules are LSTM, GRU and RNN "
                                   "with one layer for both directions" + (" (no backward_layer=)" if back else ""))
            _check_recurrent(node, inner.opts)
            yield node, sl, inner
        else:
            raise WeightsError(f"layer {node.name!r} ({node.kind}) has no PyTorch module to map to")


def to_torch_state_dict(model, names: dict | None = None) -> "OrderedDict":
    """The model's weights as a PyTorch state dict (tensors of the model's dtype), keys
    `<layer name>.<parameter>`; `names` maps a layer name to another prefix."""
    torch = _torch()
    names = names or {}
    weights = model.get_weights()
    sd: OrderedDict = OrderedDict()
    for node, sl, inner in _layers(model):
        W = weights[sl]
        prefix = names.get(node.name, node.name)
        if inner is not None:
            n = len(W) // 2
            part = {**_recurrent_to(inner.kind, inner.opts, W[:n], ""),
                    **_recurrent_to(inner.kind, inner.opts, W[n:], "_reverse")}
        elif node.kind in RECURRENT:
            part = _recurrent_to(node.kind, node.opts, W, "")
        elif node.kind == "embed":
            part = {"weight": W[0]}
        elif node.kind == "dense":
            part = {"weight": W[0].T, **({"bias": W[1]} if len(W) > 1 else {})}
        else:                   # an affine BatchNorm1d: a missing gamma is ones, a missing beta zeros
            gamma, beta, mean, var = node.spec.named_weights(node.opts, W)
            part = {"weight": np.ones_like(mean) if gamma is None else gamma,
                    "bias": np.zeros_like(mean) if beta is None else beta,
                    "running_mean": mean, "running_var": var, "num_batches_tracked": np.array(0, np.int64)}
        for key, value in part.items():
            sd[f"{prefix}.{key}"] = torch.from_numpy(np.ascontiguousarray(value))
    return sd


def from_torch_state_dict(model, state_dict, names: dict | None = None, strict: bool = True) -> None:
    """Set the model's weights from a PyTorch state dict laid out as to_torch_state_dict
    writes it (tensors or arrays). A missing key, a wrong shape, or (strict) a key no layer
    reads is a WeightsError naming it."""
    names = names or {}
    used: set[str] = set()

    def getter(prefix):
        def get(key):
            full = f"{prefix}.{key}"
            if full not in state_dict:
                raise WeightsError(f"the state dict has no {full!r}")
            used.add(full)
            v = state_dict[full]
            v = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
            return v.astype(np.float64)
        return get

    weights = model.get_weights()
    for node, sl, inner in _layers(model):
        get = getter(names.get(node.name, node.name))
        if inner is not None:
            W = _recurrent_from(inner.kind, inner.opts, get, "") + _recurrent_from(inner.kind, inner.opts, get,
                                                                                    "_reverse")
        elif node.kind in RECURRENT:
            W = _recurrent_from(node.kind, node.opts, get, "")
        elif node.kind == "embed":
            W = [get("weight")]
        elif node.kind == "dense":
            W = [get("weight").T] + ([get("bias")] if sl.stop - sl.start > 1 else [])
        else:
            o, prefix = node.opts, names.get(node.name, node.name)
            W = ([get("weight")] if o["scale"] else []) + ([get("bias")] if o["center"] else []) \
                + [get("running_mean"), get("running_var")]
            used.update(f"{prefix}.{k}" for k in ("weight", "bias", "num_batches_tracked"))
        for i, w in zip(range(sl.start, sl.stop), W):
            if w.shape != weights[i].shape:
                raise WeightsError(f"layer {node.name!r}: {model.weight_names()[i]} has shape {weights[i].shape}, "
                                   f"the state dict gives {w.shape}")
            weights[i] = w
    if strict:
        extra = [k for k in state_dict if k not in used]
        if extra:
            raise WeightsError(f"the state dict has keys no layer reads: {extra[:5]}"
                               + (" ..." if len(extra) > 5 else "") + " (strict=False ignores them)")
    model.set_weights(weights)

