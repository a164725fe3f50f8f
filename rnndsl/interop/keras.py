"""Keras 3 files in and out: a `.keras` zip (config.json, metadata.json, model.weights.h5)
to a spec and its weights, and a model to such a zip; `model.weights.h5` alone into a model.

The zip's config.json describes a Sequential or Functional model: its layers, each with
its class, options and the tensors it was called on (`keras_history` = [layer, node,
tensor]). Each Keras layer becomes one binding of the spec, named after the layer, with
the options under their Keras names (rnndsl's names are Keras's): the spec text is the
model's description, `convert` writes it as a .rnn file.

model.weights.h5 holds a group per layer, `layers/<class in snake case>` (`_1`, `_2`, ...
for the next layers of a class, in the model's layer order; a Sequential's input layer has
none), each layer's arrays in `vars/0`, `vars/1`, ... and its parts' in subgroups: a
recurrent layer's cell (`cell/vars`), a Bidirectional's `forward_layer/cell/vars` then
`backward_layer/cell/vars`, a TimeDistributed's `layer/vars`. Within a layer they are in
the order Keras (and rnndsl) list the layer's weights, so no array is renamed or reshaped.

Keras computes in float32: a model written from a float64 model stores float32 weights.
h5py is needed (`pip install "rnndsl[keras]"`); Keras itself is not.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..data.npyfile import BROKEN_ZIP
from ..errors import RnnError, WeightsError
from ..layers.base import REGISTRY

KERAS_VERSION = "3.5.0"         # the oldest Keras 3 whose format these files follow
SNAKE = {"InputLayer": "input_layer", "Embedding": "embedding", "SimpleRNN": "simple_rnn", "LSTM": "lstm",
         "GRU": "gru", "Bidirectional": "bidirectional", "Dense": "dense", "TimeDistributed": "time_distributed",
         "BatchNormalization": "batch_normalization", "Dropout": "dropout", "RepeatVector": "repeat_vector",
         "Concatenate": "concatenate", "Add": "add", "Masking": "masking", "Attention": "attention",
         "AdditiveAttention": "additive_attention", "GlobalAveragePooling1D": "global_average_pooling1d",
         "GlobalMaxPooling1D": "global_max_pooling1d", "Flatten": "flatten"}
# subgroups of a layer's h5 group, in the order their arrays follow the layer's own
PARTS = ("cell", "forward_layer", "backward_layer", "layer")
RNN_CLASSES = {"SimpleRNN": "simplernn", "LSTM": "lstm", "GRU": "gru"}
KIND_CLASS = {v: k for k, v in RNN_CLASSES.items()}
RESERVED = {"input", "output", "train", "true", "false", "seq", "state"}


class KerasFileError(RnnError):
    """A Keras file rnndsl cannot read: a layer or option it lacks, or a broken file."""


def _h5py():
    try:
        import h5py
    except ImportError:
        raise RnnError('Keras files need h5py: pip install "rnndsl[keras]" (or pip install h5py)') from None
    return h5py


# --- options -----------------------------------------------------------------------------

# Keras options each class maps to the same-named rnndsl option
RNN_OPTS = ("units", "activation", "use_bias", "dropout", "recurrent_dropout", "go_backwards", "stateful",
            "return_sequences", "return_state", "zero_output_for_mask", "trainable")
TAKEN = {
    "Embedding": ("input_dim", "output_dim", "mask_zero", "trainable"),
    "SimpleRNN": RNN_OPTS,
    "LSTM": RNN_OPTS + ("recurrent_activation", "unit_forget_bias"),
    "GRU": RNN_OPTS + ("recurrent_activation", "reset_after"),
    "Bidirectional": ("merge_mode", "trainable"),
    "Dense": ("units", "activation", "use_bias", "trainable"),
    "TimeDistributed": ("trainable",),
    "BatchNormalization": ("momentum", "epsilon", "center", "scale", "trainable"),
    "Dropout": ("rate", "seed"),
    "RepeatVector": ("n",),
    "Concatenate": (), "Add": (),
    "Masking": ("mask_value",),
    "Attention": ("use_scale", "score_mode", "dropout", "seed", "trainable"),
    "AdditiveAttention": ("use_scale", "dropout", "seed", "trainable"),
    "GlobalAveragePooling1D": (), "GlobalMaxPooling1D": (), "Flatten": (),
}
KIND = {"Embedding": "embed", "Dense": "dense", "BatchNormalization": "batchnorm", "Dropout": "dropout",
        "RepeatVector": "repeat", "Concatenate": "concat", "Add": "add", "Masking": "masking",
        "Attention": "attention", "AdditiveAttention": "additive_attention",
        "GlobalAveragePooling1D": "global_avg_pool", "GlobalMaxPooling1D": "global_max_pool", "Flatten": "flatten",
        **RNN_CLASSES}
ANY = object()
# options that change nothing rnndsl computes (any value), or that must keep their default
IGNORED = {"name": ANY, "dtype": ANY, "seed": ANY, "unroll": ANY, "use_cudnn": ANY, "implementation": ANY,
           "lora_alpha": ANY, "build_config": ANY, "input_length": ANY}
DEFAULTS = {"sparse": False, "ragged": False, "optional": False, "quantization_config": None, "lora_rank": None,
            "noise_shape": None, "axis": (-1, 2), "data_format": "channels_last", "keepdims": False,
            "synchronized": False, "renorm": False, "renorm_clipping": None, "renorm_momentum": ANY, "supports_masking": ANY, "dropout": 0.0}
TRAINING_ONLY = ("_regularizer", "_constraint")


def _check_opts(name: str, cls: str, cfg: dict, taken: tuple) -> dict:
    """The options rnndsl takes from a layer's config; any other option not at a value that
    changes nothing is an error naming the layer and the option."""
    out = {}
    for key, value in cfg.items():
        if key in taken:
            out[key] = value
        elif key in IGNORED or key.endswith("_initializer"):
            continue
        elif key.endswith(TRAINING_ONLY) or key == "activity_regularizer":
            if value is not None:
                raise KerasFileError(f"layer {name!r} ({cls}): {key} is set; rnndsl has no {key.split('_')[-1]}s")
        elif key in DEFAULTS and (DEFAULTS[key] is ANY or value == DEFAULTS[key]
                                  or (isinstance(DEFAULTS[key], tuple) and value in DEFAULTS[key])):
            continue
        else:
            raise KerasFileError(f"layer {name!r} ({cls}): option {key}={value!r} is not supported by rnndsl")
    return out


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _args(opts: dict, kind: str | None = None) -> str:
    """The call's arguments, leaving out those at rnndsl's default for the kind."""
    spec = REGISTRY.get(kind) if kind else None
    if spec is not None:
        defaults = {k: o.default for k, o in spec.options.items()}
        opts = {k: v for k, v in opts.items() if k not in defaults or v != defaults[k]
                or spec.options[k].required}
    first = [str(opts.pop(k)) for k in (spec.positional if spec is not None else ()) if k in opts]
    return ", ".join(first + [f"{k}={_value(v)}" for k, v in opts.items() if v is not None])


def _activation(name, cls, opts):
    for key in ("activation", "recurrent_activation"):
        a = opts.get(key)
        if isinstance(a, dict):           # a serialized function: its registered name
            a = a.get("config", a.get("class_name"))
            a = a.get("name") if isinstance(a, dict) else a
        if a is not None and not isinstance(a, str):
            raise KerasFileError(f"layer {name!r} ({cls}): {key} {a!r} is not one rnndsl has")
        if a is not None:
            opts[key] = a
    return opts


def _rnn_call(name: str, cls: str, cfg: dict) -> str:
    if cls not in RNN_CLASSES:
        raise KerasFileError(f"layer {name!r}: rnndsl's recurrent layers are SimpleRNN, LSTM and GRU, not {cls}")
    opts = _activation(name, cls, _check_opts(name, cls, cfg, TAKEN[cls]))
    return f"{RNN_CLASSES[cls]}({_args(opts, RNN_CLASSES[cls])})"


def _layer_call(name: str, cls: str, cfg: dict, call_kw: dict) -> str:
    if cls == "Bidirectional":
        opts = _check_opts(name, cls, {k: v for k, v in cfg.items() if k not in ("layer", "backward_layer")},
                           TAKEN[cls])
        if opts.get("merge_mode") is None:
            opts["merge_mode"] = "none"
        fwd = cfg["layer"]
        inner = _rnn_call(name, fwd["class_name"], fwd["config"])
        back = cfg.get("backward_layer")
        extra = ""
        if back is not None:
            bc, fc = back["config"], fwd["config"]
            keys = TAKEN.get(fwd["class_name"], ())
            same = (back["class_name"] == fwd["class_name"]
                    and bc.get("go_backwards", False) != fc.get("go_backwards", False)
                    and all(bc.get(k) == fc.get(k) for k in keys if k != "go_backwards"))
            if not same:
                extra = f", backward_layer={_rnn_call(name, back['class_name'], back['config'])}"
        rest = _args(opts, "bidirectional")
        return f"bidirectional({inner}{extra}{', ' + rest if rest else ''})"
    if cls == "TimeDistributed":
        inner = cfg["layer"]
        if inner["class_name"] != "Dense":
            raise KerasFileError(f"layer {name!r} (TimeDistributed): rnndsl applies only Dense per step, not "
                                 f"{inner['class_name']}")
        _check_opts(name, cls, {k: v for k, v in cfg.items() if k != "layer"}, TAKEN[cls])
        return _layer_call(name, "Dense", inner["config"], {})
    if cls not in KIND:
        raise KerasFileError(f"layer {name!r} ({cls}): rnndsl has no such layer (it has "
                             f"{', '.join(['InputLayer', 'TimeDistributed(Dense)', *sorted(TAKEN)])})")
    opts = _activation(name, cls, _check_opts(name, cls, cfg, TAKEN[cls] + ("trainable",)))
    if "trainable" not in REGISTRY[KIND[cls]].options and opts.pop("trainable", True) is not True:
        raise KerasFileError(f"layer {name!r} ({cls}): trainable=False; rnndsl's {KIND[cls]} has no weights to freeze")
    for key, value in call_kw.items():
        opts[key] = value
    return f"{KIND[cls]}({_args(opts, KIND[cls])})"


# --- Keras config -> spec -----------------------------------------------------------------

def _ident(name: str, used: set) -> str:
    s = re.sub(r"\W", "_", name)
    if not s or s[0].isdigit() or s in RESERVED:
        s = "k_" + s
    base, k = s, 1
    while s in used:
        s, k = f"{base}_{k}", k + 1
    used.add(s)
    return s


def _history(t, where: str) -> tuple[str, int]:
    if not (isinstance(t, dict) and t.get("class_name") == "__keras_tensor__"):
        raise KerasFileError(f"{where}: an input that is not a layer's output ({str(t)[:80]})")
    layer, node, index = t["config"]["keras_history"]
    if node != 0:
        raise KerasFileError(f"{where}: layer {layer!r} is called more than once (shared); rnndsl has no shared "
                             "layers")
    return layer, index


def _input_decl(name: str, cfg: dict) -> str:
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape") or [None, *cfg.get("shape", [])]
    dims = ["?" if d is None else str(d) for d in shape[1:]]
    dtype = str(cfg.get("dtype", "float32"))
    dtype = dtype.get("config", {}).get("name", "float32") if isinstance(dtype, dict) else dtype
    if dtype.startswith(("int", "uint")):
        if len(dims) != 1:
            raise KerasFileError(f"input {name!r}: integer inputs are token ids (batch, steps), got shape {shape}")
        return f"int[{dims[0]}]"
    if len(dims) not in (1, 2) or dims[-1] == "?":
        raise KerasFileError(f"input {name!r}: rnndsl's float inputs are (batch, steps, features) or "
                             f"(batch, features) with a known feature size, got shape {shape}")
    return f"float[{', '.join(dims)}]"


def _sequential_layers(cfg: dict) -> tuple[list, list]:
    """A Sequential's layers as a Functional's: (layers with inbound nodes, outputs)."""
    layers = list(cfg["layers"])
    if not layers or layers[0]["class_name"] != "InputLayer":
        shape = cfg.get("build_input_shape")
        if shape is None:
            raise KerasFileError("the Sequential model has no input shape (build it, or start it with keras.Input)")
        layers.insert(0, {"class_name": "InputLayer", "config": {"batch_shape": shape, "name": "input_layer"},
                          "sequential_input": True})
    prev, out = None, []
    for lay in layers:
        name = lay["config"]["name"]
        lay = {**lay, "name": name, "inbound_nodes": [] if prev is None else [{"args": [
            {"class_name": "__keras_tensor__", "config": {"keras_history": [prev, 0, 0]}}], "kwargs": {}}]}
        out.append(lay)
        prev = name
    return out, [[prev, 0, 0]]


def keras_config_to_spec(config: dict) -> tuple[str, list[tuple[str, str, str]], list[str]]:
    """(spec text, [(binding, Keras class, h5 group)] per Keras layer with weights, the
    recurrent layers Keras called with initial_state and no mask) for a Keras 3 config.json
    of a Sequential or Functional model."""
    cls = config.get("class_name")
    cfg = config.get("config", {})
    if cls == "Sequential":
        layers, outputs = _sequential_layers(cfg)
        seq = True
    elif cls in ("Functional", "Model"):
        layers, outputs = cfg["layers"], cfg["output_layers"]
        seq = False
    else:
        raise KerasFileError(f"the file holds a {cls}; rnndsl reads Sequential and Functional models")
    if outputs and isinstance(outputs[0], str):
        outputs = [outputs]
    used: set = set()
    ident: dict[str, str] = {}
    kinds: dict[str, str] = {}
    state_of: dict[str, int] = {}   # layer -> index of its first state output
    two_out: set = set()            # Bidirectional layers with merge_mode None: outputs forward, backward
    lines, groups, counts, unmasked = [], [], {}, []
    for lay in layers:
        lcls, lcfg = lay["class_name"], lay["config"]
        name = lay.get("name") or lcfg["name"]
        if lcls not in SNAKE:
            where = f"layer {name!r} ({lcls})"
            if lay.get("module", "").startswith("keras.src.ops") and lcls in ("NotEqual", "Any"):
                # the mask a mask_zero Embedding or a Masking computes, recorded as an op; rnndsl
                # carries masks itself
                continue
            raise KerasFileError(f"{where}: rnndsl has no such layer (it has "
                                 f"{', '.join(['InputLayer', 'TimeDistributed(Dense)', *sorted(TAKEN)])})")
        snake = SNAKE[lcls]
        k = counts.get(snake, 0)
        counts[snake] = k + 1
        group = f"layers/{snake}" + (f"_{k}" if k else "")
        b = ident[name] = _ident(name, used)
        kinds[name] = lcls
        if lcls == "InputLayer":
            _check_opts(name, lcls, {k2: v for k2, v in lcfg.items()
                                     if k2 not in ("batch_shape", "batch_input_shape", "shape")}, ())
            lines.append(f"input {b}: {_input_decl(name, lcfg)}")
            if lay.get("sequential_input") or seq:
                counts[snake] -= 1      # a Sequential's input layer has no group
            continue
        nodes = lay.get("inbound_nodes", [])
        if len(nodes) != 1:
            raise KerasFileError(f"layer {name!r} ({lcls}) is called {len(nodes)} times; rnndsl has no shared layers")
        args, kw = nodes[0].get("args", []), dict(nodes[0].get("kwargs", {}))
        ins = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        refs = []
        for t in ins:
            src, index = _history(t, f"layer {name!r}")
            refs.append(_tensor(src, index, ident, kinds, two_out, name))
        call_kw, init = {}, ""
        for key, value in kw.items():
            if key in ("mask", "training"):
                continue
            if key == "initial_state" and value is not None:
                init = _initial_state(value, ident, kinds, state_of, name)
                if kw.get("mask") is None:
                    unmasked.append(b)
            elif key in ("return_attention_scores", "use_causal_mask") and lcls in ("Attention",
                                                                                   "AdditiveAttention"):
                call_kw[key] = bool(value)
            elif value is not None and value is not False:
                raise KerasFileError(f"layer {name!r} ({lcls}): call argument {key}={str(value)[:60]} is not "
                                     "supported by rnndsl")
        call = _layer_call(name, lcls, lcfg, call_kw)
        if init:
            call = call[:-1] + (", " if call[-2] != "(" else "") + f"initial_state={init})"
        if lcls in RNN_CLASSES or lcls == "Bidirectional":
            inner = lcfg["layer"]["config"] if lcls == "Bidirectional" else lcfg
            if inner.get("return_state"):
                state_of[name] = 2 if lcls == "Bidirectional" and lcfg.get("merge_mode") is None else 1
        kind = call[:call.index("(")]
        if kind in ("concat", "add", "attention", "additive_attention"):
            inner = call[len(kind) + 1:-1]
            lines.append(f"{b} = {kind}({', '.join(refs + ([inner] if inner else []))})")
        else:
            if len(refs) != 1:
                raise KerasFileError(f"layer {name!r} ({lcls}) takes one input, got {len(refs)}")
            lines.append(f"{b} = {refs[0]} | {call}")
        if lcls == "Bidirectional" and lcfg.get("merge_mode") is None:
            two_out.add(name)
        groups.append((b, lcls, group))
    lines += _outputs(outputs, ident, kinds, state_of, two_out)
    return "\n".join(lines) + "\n", groups, unmasked


def _tensor(src: str, index: int, ident, kinds, two_out, user: str) -> str:
    if src not in ident:
        raise KerasFileError(f"layer {user!r} reads {src!r}, which the file does not define before it")
    if src in two_out and index in (0, 1):
        return f"{ident[src]}.{('forward', 'backward')[index]}"
    if index == 0:
        return ident[src]
    if kinds[src] in ("Attention", "AdditiveAttention") and index == 1:
        return f"{ident[src]}.scores"
    raise KerasFileError(f"layer {user!r} reads output {index} of {src!r} (a state's part): rnndsl passes a "
                         "layer's whole state, as initial_state, or makes its parts model outputs")


def _initial_state(value, ident, kinds, state_of, user: str) -> str:
    hist = [_history(t, f"layer {user!r}") for t in value]
    srcs = {s for s, _ in hist}
    if len(srcs) == 1:
        src = hist[0][0]
        first = state_of.get(src)
        if first is not None and [i for _, i in hist] == list(range(first, first + len(hist))):
            return f"{ident[src]}.state"
    if all(i == 0 for _, i in hist):
        return "[" + ", ".join(ident[s] for s, _ in hist) + "]"
    raise KerasFileError(f"layer {user!r}: its initial_state mixes parts of states; rnndsl takes a layer's whole "
                         "state or vectors")


def _outputs(outputs, ident, kinds, state_of, two_out) -> list[str]:
    lines, k = [], 0
    while k < len(outputs):
        src, node, index = outputs[k]
        if index == 0 or (src in two_out and index == 1):
            t = _tensor(src, index, ident, kinds, two_out, "output")
            lines.append(f"output {t.replace('.', '_')} = {t}" if "." in t else f"output {t}")
            k += 1
            continue
        if kinds.get(src) in ("Attention", "AdditiveAttention"):
            lines.append(f"output {ident[src]}_scores = {ident[src]}.scores")
            k += 1
            continue
        first = state_of.get(src)
        n = 0
        while k + n < len(outputs) and outputs[k + n][0] == src and outputs[k + n][2] == first + n:
            n += 1
        if first is None or index != first or n == 0:
            raise KerasFileError(f"model output {index} of layer {src!r} (a state's part): rnndsl outputs a "
                                 "layer's whole state, its parts in order")
        names = [f"{ident[src]}_{j}" for j in range(n)]
        lines.append(f"output {', '.join(names)} = {ident[src]}.state")
        k += n
    return lines


# --- weights ---------------------------------------------------------------------------

def _group_arrays(group) -> list[np.ndarray]:
    """A layer's arrays: its own vars/0, vars/1, ..., then its parts' (PARTS order)."""
    out = []
    if "vars" in group:
        v = group["vars"]
        out += [np.asarray(v[str(i)]) for i in range(len(v))]
    for part in PARTS:
        if part in group:
            out += _group_arrays(group[part])
    return out


def _keras_layers(model) -> list[tuple[object, str, str]]:
    """(node, Keras class, h5 group) per layer a Keras functional model of this spec has."""
    out, counts = [], {}
    for node in _layer_order(model.graph):
        cls = _keras_class(node)
        snake = SNAKE[cls]
        k = counts.get(snake, 0)
        counts[snake] = k + 1
        out.append((node, cls, f"layers/{snake}" + (f"_{k}" if k else "")))
    return out


def _layer_order(graph):
    """The graph's Keras layers (inputs first, then keras_order), without the state nodes."""
    inputs = [graph.nodes[i] for i in graph.inputs]
    rest = [n for n in graph.keras_order() if n.kind != "input" and not n.spec.internal]
    return inputs + rest


def _keras_class(node) -> str:
    cls = node.spec.keras_class
    if node.kind == "bidirectional" or node.kind.startswith("bi"):
        cls = "Bidirectional"
    if cls not in SNAKE:
        raise KerasFileError(f"layer {node.name!r} ({node.kind}) has no Keras layer rnndsl can write")
    return cls


def _set_from_groups(model, f, groups: list[tuple[str, str, str]], where: str) -> None:
    """Set each named layer's weights from its h5 group, checking count and shapes."""
    weights = model.get_weights()
    starts, k = {}, 0
    for node in model.graph.keras_order():
        starts[node.name] = (k, node)
        k += len(node.weights)
    for name, cls, group in groups:
        k, node = starts[name]
        n = len(node.weights)
        arrays = _group_arrays(f[group]) if group in f else []
        if len(arrays) != n:
            raise WeightsError(f"{where}: layer {name!r} ({cls}) has {n} weight arrays, {group} holds {len(arrays)}")
        for i, a in enumerate(arrays):
            if a.dtype.kind not in "fiub":
                raise WeightsError(f"{where}: layer {name!r}: {node.weights[i].name} holds {a.dtype}, not numbers")
            if a.shape != weights[k + i].shape:
                raise WeightsError(f"{where}: layer {name!r}: {node.weights[i].name} has shape "
                                   f"{weights[k + i].shape}, {group} gives {a.shape}")
            weights[k + i] = a.astype(weights[k + i].dtype)
    model.set_weights(weights)


def load_weights(model, path) -> None:
    """Set a model's weights from a Keras 3 `model.weights.h5` of the same architecture.

    Each layer's group is found by the layer name Keras records on it (`vars` attribute
    `name`) when every layer with weights has its name there; else by Keras's own rule,
    class and position (a Functional model's input layers have groups, a Sequential's not)."""
    h5py = _h5py()
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"cannot read {path} as a Keras weights file: {e}") from None
    with f:
        named = {}
        for key, group in (f["layers"].items() if "layers" in f else ()):
            v = group.get("vars") if isinstance(group, h5py.Group) else None
            name = v.attrs.get("name") if v is not None else None
            named[name.decode() if isinstance(name, bytes) else name] = f"layers/{key}"
        layers = _keras_layers(model)
        if all(node.name in named for node, _, _ in layers if node.weights):
            groups = [(node.name, cls, named[node.name]) for node, cls, _ in layers if node.weights]
        else:
            # a Sequential's file has no input_layer group: its layers' groups are then one off
            seq = "layers/input_layer" not in f and len(model.graph.inputs) == 1
            counts, groups = {}, []
            for node, cls, _ in layers:
                snake = SNAKE[cls]
                if seq and cls == "InputLayer":
                    continue
                k = counts.get(snake, 0)
                counts[snake] = k + 1
                if node.weights:
                    groups.append((node.name, cls, f"layers/{snake}" + (f"_{k}" if k else "")))
        _set_from_groups(model, f, groups, str(path))


# --- reading a .keras file -------------------------------------------------------------

def _read_zip(path) -> tuple[dict, bytes]:
    path = Path(path)
    try:
        z = zipfile.ZipFile(path)
    except BROKEN_ZIP as e:                 # (a damaged central directory: NotImplementedError, ...)
        raise KerasFileError(f"{path}: not a Keras 3 .keras file (a zip holding config.json and "
                             f"model.weights.h5): {e}") from None
    with z:
        names = set(z.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            raise KerasFileError(f"{path}: a Keras 3 .keras zip holds config.json and model.weights.h5; this one "
                                 f"has {', '.join(sorted(names)[:5]) or 'nothing'}")
        try:
            config = json.loads(z.read("config.json"))
            weights = z.read("model.weights.h5")
        except ValueError as e:             # JSONDecodeError, UnicodeDecodeError
            raise KerasFileError(f"{path}: config.json is not JSON: {e}") from None
        except RecursionError:
            raise KerasFileError(f"{path}: config.json nests too deeply") from None
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as e:
            # a damaged member (CRC, deflate stream), an unknown compression, encryption
            raise KerasFileError(f"{path}: cannot read the zip's members: {type(e).__name__}: {e}") from None
    if not isinstance(config, dict):
        raise KerasFileError(f"{path}: config.json is not a Keras model config (a JSON object), it is "
                             f"{type(config).__name__}")
    return config, weights


def keras_to_spec(path) -> str:
    """The spec text of a .keras file's model."""
    config, _ = _read_zip(path)
    return _spec_of(config, path)[0]


def _spec_of(config, path):
    try:
        return keras_config_to_spec(config)
    except KerasFileError as e:
        raise KerasFileError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise KerasFileError(f"{path}: config.json is not a Keras 3 model config ({type(e).__name__}: "
                             f"{str(e)[:100]})") from None


def load_keras(path, dtype: str = "float32", seed: int = 0):
    """A Model from a Keras 3 .keras file: its spec from config.json, its weights from
    model.weights.h5."""
    from .. import compile as compile_spec

    h5py = _h5py()
    config, weights = _read_zip(path)
    text, groups, unmasked = _spec_of(config, path)
    inner = config.get("config")
    name = (inner.get("name") if isinstance(inner, dict) else None) or Path(path).stem
    try:
        model = compile_spec(text, dtype=dtype, seed=seed, file=str(path))
    except RnnError as e:
        raise KerasFileError(f"{path}: the model's spec does not check:\n{e}\nspec:\n{text}") from None
    for node in model.graph.layers:
        if node.name in unmasked and model.graph.type_of(node.inputs[0]).masked:
            # Keras fills in a layer's mask only when it is called on one tensor: with initial_state
            # it reads the padded steps as real ones, where rnndsl skips them
            raise KerasFileError(f"{path}: layer {node.name!r} is called with initial_state on a masked input "
                                 "and no mask=, so Keras ignores the mask there; rnndsl would apply it. Pass "
                                 "mask= to that call in Keras (or drop the mask) and save again")
    model.name = name
    try:
        f = h5py.File(io.BytesIO(weights), "r")
    except OSError as e:
        raise KerasFileError(f"{path}: model.weights.h5 is not an HDF5 file: {e}") from None
    with f:
        _set_from_groups(model, f, groups, f"{path}: model.weights.h5")
    return model


# --- writing a .keras file -------------------------------------------------------------

def _tensor_ref(graph, node_id: int, index: int, shape=None) -> dict:
    node = graph.nodes[node_id]
    t = node.out or next(iter(node.outputs.values()), None)
    dtype = "int32" if t is not None and t.is_tokens else "float32"
    shp = list(shape if shape is not None else (t.keras_shape() if t is not None else ()))
    return {"class_name": "__keras_tensor__",
            "config": {"shape": shp, "dtype": dtype, "keras_history": [node.name, 0, index]}}


def _port_index(graph, ref) -> int:
    node = graph.nodes[ref.node]
    return {"out": 0, "forward": 0, "backward": 1, "scores": 1}[ref.port] if node.kind != "state_part" else 0


def _ref(graph, ref) -> dict:
    """The Keras tensor of a PortRef (a state_part node stands for its state's part)."""
    node = graph.nodes[ref.node]
    if node.kind == "state_part":
        src = node.inputs[0].node
        return _tensor_ref(graph, src, _first_state(graph.nodes[src]) + node.opts["part"],
                           node.out.keras_shape())
    return _tensor_ref(graph, ref.node, _port_index(graph, ref))


def _first_state(node) -> int:
    return 2 if node.kind != "input" and node.opts.get("merge_mode") == "none" else 1


def _rnn_config(kind, o, name) -> dict:
    cfg = {"name": name, "units": o["units"], "activation": o["activation"], "use_bias": o["use_bias"],
           "dropout": o["dropout"], "recurrent_dropout": o["recurrent_dropout"], "go_backwards": o["go_backwards"],
           "stateful": o["stateful"], "return_sequences": o["return_sequences"],
           "return_state": o["return_state"], "zero_output_for_mask": o["zero_output_for_mask"],
           "trainable": o.get("trainable", True)}
    if kind in ("lstm", "gru"):
        cfg["recurrent_activation"] = o["recurrent_activation"]
    if kind == "lstm":
        cfg["unit_forget_bias"] = o["unit_forget_bias"]
    if kind == "gru":
        cfg["reset_after"] = o["reset_after"]
    return {"module": "keras.layers", "class_name": KIND_CLASS[kind], "config": cfg, "registered_name": None}


def _layer_config(node, cls: str) -> dict:
    o, kind = node.opts, node.kind
    if cls == "InputLayer":
        t = node.out
        return {"batch_shape": list(t.keras_shape()), "dtype": "int32" if t.is_tokens else "float32",
                "name": node.name}
    if cls == "Bidirectional":
        inner, back = node.spec.inner(node), node.spec.backward(node)
        cfg = {"name": node.name, "trainable": o.get("trainable", True),
               "merge_mode": None if o["merge_mode"] == "none" else o["merge_mode"],
               "layer": _rnn_config(inner.kind, inner.opts, f"forward_{inner.spec.keras_name}")}
        if back is not inner:
            cfg["backward_layer"] = _rnn_config(back.kind, back.opts, back.opts.get("name") or
                                                f"backward_{back.spec.keras_name}")
        return cfg
    if kind in KIND_CLASS:
        return _rnn_config(kind, o, node.name)["config"]
    keep = {k: o[k] for k in TAKEN[cls] if k in o}
    if cls == "Embedding":
        keep = {"input_dim": o["input_dim"], "output_dim": o["output_dim"], "mask_zero": o["mask_zero"],
                "trainable": o["trainable"]}
    return {"name": node.name, **keep}


def keras_config(model) -> dict:
    """The config.json of a Keras Functional model computing what the model computes."""
    g = model.graph
    layers, masks = [], {}
    names = {n.name for n in g.nodes}
    for node, cls, _ in _keras_layers(model):
        entry = {"module": "keras.layers", "class_name": cls, "config": _layer_config(node, cls),
                 "registered_name": None, "name": node.name, "inbound_nodes": []}
        if cls != "InputLayer":
            args = [_ref(g, r) for r in node.inputs]
            kwargs = {}
            if node.initial_state is not None:
                src = g.nodes[node.initial_state.node]
                if src.kind == "state_pack":
                    kwargs["initial_state"] = [_ref(g, r) for r in src.inputs]
                else:
                    kwargs["initial_state"] = [_tensor_ref(g, src.id, _first_state(src) + k, [None, u])
                                               for k, (_, u) in enumerate(src.state.parts)]
                if g.type_of(node.inputs[0]).masked:
                    # Keras fills in the mask only for a call on one tensor: give it explicitly
                    kwargs["mask"] = _mask_tensor(g, node.inputs[0], masks, layers, names, node.name)
            if node.kind in ("attention", "additive_attention"):
                for key in ("return_attention_scores", "use_causal_mask"):
                    if node.opts.get(key):
                        kwargs[key] = True
                entry["config"].pop("return_attention_scores", None)
                entry["config"].pop("use_causal_mask", None)
            entry["inbound_nodes"] = [{"args": [args] if node.spec.fan_in else args, "kwargs": kwargs}]
        layers.append(entry)
    inputs = [[g.nodes[i].name, 0, 0] for i in g.inputs]
    outputs = [_ref(g, o.ref)["config"]["keras_history"] for o in g.outputs]
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": model.name, "trainable": True, "layers": layers, "input_layers": inputs,
                       "output_layers": outputs},
            "registered_name": "Functional", "build_config": None, "compile_config": None}


# layers whose output carries the mask of their first input
MASK_THROUGH = ("dense", "dropout", "batchnorm", "attention", "additive_attention", "lstm", "gru", "simplernn",
                "bidirectional", "bilstm", "bigru", "birnn")


def _op(layers, names, cls: str, base: str, args: list, config: dict | None = None) -> dict:
    """Append a Keras op node (as Keras records the masks it computes); its output tensor."""
    name, k = base, 0
    while name in names:
        k += 1
        name = f"{base}_{k}"
    names.add(name)
    layers.append({"module": "keras.src.ops.numpy", "class_name": cls, "config": {"name": name, **(config or {})},
                   "registered_name": cls, "name": name, "inbound_nodes": [{"args": args, "kwargs": {}}]})
    return {"class_name": "__keras_tensor__", "config": {"shape": [None, None], "dtype": "bool",
                                                         "keras_history": [name, 0, 0]}}


def _mask_tensor(g, ref, masks: dict, layers: list, names: set, user: str) -> dict:
    """The Keras tensor of the mask that travels with `ref`: `ids != 0` after a mask_zero
    embedding, `any(x != mask_value, axis=-1)` after masking, carried by per-step layers."""
    node = g.nodes[ref.node]
    while node.kind in MASK_THROUGH or (node.kind in ("concat", "add") and
                                        sum(g.type_of(r).masked for r in node.inputs) == 1):
        ref = next(r for r in node.inputs if g.type_of(r).masked)
        node = g.nodes[ref.node]
    if node.id in masks:
        return masks[node.id]
    if node.kind == "embed":
        t = _op(layers, names, "NotEqual", "not_equal", [_ref(g, node.inputs[0]), 0])
    elif node.kind == "masking":
        ne = _op(layers, names, "NotEqual", "not_equal", [_ref(g, node.inputs[0]), node.opts["mask_value"]])
        t = _op(layers, names, "Any", "any", [ne], {"axis": -1, "keepdims": False})
    else:
        raise KerasFileError(f"layer {user!r}: its input's mask comes from {node.name!r} ({node.kind}); rnndsl "
                             "writes for Keras only a mask from an embedding or a masking layer")
    masks[node.id] = t
    return t


def _write_weights(model, f) -> None:
    weights = model.get_weights()
    starts, k = {}, 0
    for node in model.graph.keras_order():
        starts[node.id] = k
        k += len(node.weights)
    f.create_group("vars")
    top = f.create_group("layers")
    for node, cls, group in _keras_layers(model):
        g = top.create_group(group.split("/", 1)[1])
        g.create_group("vars").attrs["name"] = node.name       # as Keras records it
        W = [np.asarray(w, np.float32) for w in weights[starts[node.id]:starts[node.id] + len(node.weights)]]
        if cls == "Bidirectional":
            n = node.spec.inner(node).n_weights
            for part, arrays in (("forward_layer", W[:n]), ("backward_layer", W[n:])):
                p = g.create_group(part)
                p.create_group("vars")
                _vars(p.create_group("cell"), arrays)
        elif node.kind in KIND_CLASS:
            _vars(g.create_group("cell"), W)
        else:
            _vars(g, W, g["vars"])


def _vars(group, arrays, v=None) -> None:
    v = group.create_group("vars") if v is None else v
    for i, a in enumerate(arrays):
        v.create_dataset(str(i), data=a)


def save_keras(model, path) -> Path:
    """Write the model as a Keras 3 .keras file (config.json, metadata.json, model.weights.h5)."""
    h5py = _h5py()
    path = Path(path)
    config = keras_config(model)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        _write_weights(model, f)
    meta = {"keras_version": KERAS_VERSION, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr("metadata.json", json.dumps(meta))
            z.writestr("config.json", json.dumps(config))
            z.writestr("model.weights.h5", buf.getvalue())
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RnnError(f"cannot write {path}: {e.strerror or e}") from None
    return path
