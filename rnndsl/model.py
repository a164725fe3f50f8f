"""Model: a compiled spec: its summary and graph, running it, its weights, its gradients.

Arrays go in and come out batch-major, as in Keras: sequences (batch, steps,
features), token ids (batch, steps), vectors (batch, features). Inside, the
executor keeps sequences time-major.
"""

from __future__ import annotations

import numpy as np

from .data.options import fits_memory
from .errors import DataError, RnnError, WeightsError, whole_number
from .runtime import make_executor, resolve_device

from .graph.build import build_graph
from .graph.graph import Graph
from .graph.summary import summary_text, to_dot
from .lang.parser import parse
from .train.targets import fit_generator, input_list, output_loss, target_list
from .train.train_block import check_train_block


def _float_dtype(dtype) -> str:
    """"float32" or "float64" for any spelling NumPy has of them; anything else is refused."""
    try:
        name = np.dtype(dtype).name if dtype is not None and not isinstance(dtype, bool) else None
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise RnnError(f"dtype must be float32 or float64, got {dtype!r}")
    return name


class Model:
    def __init__(self, graph: Graph, name: str = "model", dtype: str = "float32", seed: int = 0,
                 device: str = "cpu"):
        self.device = resolve_device(device)
        self.graph = graph
        self.name = name
        self.dtype = _float_dtype(dtype)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise RnnError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.epoch = 0
        self.train_config = None
        # raw text -> ids as the training data had them (rnndsl.data.TextEncoder): set by a
        # text data source, kept in checkpoints; predict() then takes lists of strings
        self.text_encoder = None
        self.stop_training = False      # a callback sets it to end fit (Keras's model.stop_training)

    @property
    def source(self) -> str:
        return self.graph.source

    @property
    def input_names(self) -> list[str]:
        return [self.graph.nodes[i].name for i in self.graph.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.graph.outputs]

    def summary(self, print_fn=print) -> None:
        print_fn(summary_text(self.graph, self.name))

    def summary_text(self) -> str:
        return summary_text(self.graph, self.name)

    def count_params(self) -> int:
        return self.graph.count_params()

    def to_dot(self) -> str:
        return to_dot(self.graph, self.name)

    def weight_names(self) -> list[str]:
        return [w.name for _, w in self.graph.weight_specs()]

    # --- running -------------------------------------------------------------------------
    @property
    def executor(self):
        if getattr(self, "_executor", None) is None:
            self._executor = make_executor(self.graph, self.dtype, self.seed, self.device)
        return self._executor

    def to(self, device: str) -> "Model":
        """Move the model to "cpu", "cuda" or "auto": weights, stateful states and the
        optimizer's state follow; the numbers stay the same within float tolerance."""
        device = resolve_device(device)
        if device == self.device:
            return self
        old = getattr(self, "_executor", None)
        self.device = device
        if old is not None:
            weights, rng, states = old.read_weights(), old.rng, old.export_states()
            self._executor = None
            self.executor.write_weights(weights)
            self.executor.rng = rng
            self.executor.import_states(states)
        return self

    def _output_arrays(self, acts) -> list[np.ndarray]:
        return [np.ascontiguousarray(a.data.transpose(1, 0, 2)) if a.data.ndim == 3 else a.data for a in acts]

    def _pack(self, outs: list[np.ndarray]):
        return outs[0] if len(outs) == 1 else outs

    def predict_on_batch(self, x):
        """Outputs for one batch, inference mode (dropout off, batchnorm on moving statistics)."""
        x = self._from_text(x)
        ex = self.executor
        tape = ex.forward(ex.prepare_inputs(x), training=False)
        return self._pack(self._output_arrays(tape.outputs))

    def predict(self, x, batch_size: int | None = None):
        """Outputs for all samples, computed batch_size (default 32) at a time. A model that
        carries a vocabulary (``text_encoder``) also takes raw text: a list of strings,
        tokenised, padded and truncated as its training data was."""
        xs = input_list(self._from_text(x), self.input_names)
        bs = 32 if batch_size is None else whole_number("batch_size", batch_size, 1)
        n = _samples(xs)
        parts = [self._output_arrays(self.executor.forward(
            self.executor.prepare_inputs([a[i:i + bs] for a in xs]), training=False).outputs)
            for i in range(0, n, bs)]
        return self._pack([np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))])

    def step(self, x_t):
        """One time step of a stateful model: x_t is (batch, features) (or (batch,) token ids)
        per input; the state carries over to the next call. Returns the step's output.

        An input may also be given whole (a sequence (batch, steps, ...), or a vector input):
        then it is an encoder's, run once, and the layers that depend on the inputs given as
        one step (a decoder, attention over the encoder) advance a step per call, each
        recurrent layer from the state its last step left (its initial_state edge first),
        stateful or not; until reset_states() or other values for the whole inputs."""
        # the compiled path first, with as little Python as possible: a batch-1 step is
        # latency-bound, and each check here costs a visible share of it
        plan = getattr(self, "_plan", None)
        if plan is None or plan.ex is not getattr(self, "_executor", None):
            plan = self._step_plan()
        # (an exact type test first: cheaper than the isinstance with three types)
        if plan is not None and (type(x_t) is np.ndarray or not isinstance(x_t, (list, tuple, dict))):
            return plan.step(x_t)
        given = input_list(x_t, self.input_names)
        if len(given) == len(self.input_names):
            whole = [i for i, a in zip(self.graph.inputs, given) if self._given_whole(i, a)]
            if whole:
                return self._pack(self._session_step(given, whole))
        if not any(n.opts.get("stateful") or getattr(n.opts.get("layer"), "opts", {}).get("stateful")
                   for n in self.graph.nodes):
            raise DataError("step() runs one time step and keeps the state: the model needs stateful=true layers "
                            "(or an encoder's inputs given whole, the rest as one step)")
        xs = [np.asarray(a)[:, None] for a in given]
        out = self.predict_on_batch(xs if len(xs) > 1 else xs[0])
        outs = out if isinstance(out, list) else [out]
        return self._pack([o[:, 0] if o.ndim == 3 else o for o in outs])

    def decode(self, inputs=None, start=None, end=None, max_len=None, method="greedy", beam_width=4,
               temperature=1.0, seed=None, return_scores=False, decoder_input=None, output=None):
        """Token sequences generated by the decoder, one compiled step at a time with its
        states kept (the prefix is never run again), all rows as one batch.

        inputs: an encoder-decoder model's encoder inputs (an array, or a list or dict for
        several); for a model whose only input is the decoder's (a language model), the
        prompt, token ids (batch, steps). start: the first token fed to the decoder (one
        id, or one per row); a language model's prompt is prefixed with it. end: the token
        that finishes a row (then repeated to the end). max_len: tokens to generate (default
        the decoder input's declared steps). method: "greedy", "sample" (from the softmax
        of logits / temperature, seeded by `seed`) or "beam" (beam_width beams; temperature
        scales the logits as well). Returns (batch, L) int64 token ids, L <= max_len, and
        with return_scores=True also each row's sum of log-probabilities. The math:
        runtime/decode.py."""
        from .runtime.decode import METHODS, Decoder

        if method not in METHODS:
            raise DataError(f"decode: method must be one of {', '.join(METHODS)}, got {method!r}")
        k = whole_number("beam_width", beam_width, 1)
        try:
            temperature = float(temperature)
        except (TypeError, ValueError):
            temperature = float("nan")
        if not (np.isfinite(temperature) and temperature > 0):
            raise DataError(f"decode: temperature must be a number > 0, got {temperature!r}")
        dec = Decoder(self.executor, decoder_input, output)
        g = self.graph
        if max_len is None:
            max_len = g.nodes[dec.input].out.steps
            if max_len is None:
                raise DataError(f"decode: input {g.nodes[dec.input].name!r} declares no number of steps; "
                                "pass max_len")
        max_len = whole_number("max_len", max_len, 1)
        if end is not None:
            end = whole_number("end", end, 0)
            if end >= dec.vocab:
                raise DataError(f"decode: end={end} is not a token of output {dec.output.name!r} "
                                f"(ids 0..{dec.vocab - 1})")
        static_names = [g.nodes[i].name for i in dec.static_inputs]
        if static_names:
            if inputs is None:
                raise DataError(f"decode needs the encoder's input(s): {static_names}")
            enc = input_list(inputs, static_names)
            if len(enc) != len(static_names):
                raise DataError(f"decode: the encoder takes {len(static_names)} input(s) ({', '.join(static_names)}), "
                                f"got {len(enc)}")
            rows = _samples(enc)
            if start is None:
                raise DataError("decode: pass start=, the token the decoder is fed first")
            prompt = _token_column(start, rows)
        else:
            enc = []
            if inputs is None:
                if start is None:
                    raise DataError("decode: pass a prompt (token ids, (batch, steps)) or start=")
                prompt = _token_column(start, np.size(start))
            else:
                prompt = np.asarray(inputs)
                if prompt.ndim != 2 or prompt.shape[1] == 0 or prompt.shape[0] == 0:
                    raise DataError(f"decode: the prompt must be token ids of shape (batch, steps >= 1), "
                                    f"got shape {prompt.shape}")
                if start is not None:
                    prompt = np.concatenate([_token_column(start, len(prompt)), prompt], axis=1)
        if method == "beam":
            rows = len(prompt) * k
            if rows * dec.vocab > MAX_BEAM_SCORES:
                raise DataError(f"decode: {len(prompt)} row(s) of {k} beams over {dec.vocab} tokens score "
                                f"{rows * dec.vocab:,} candidates a step, more than {MAX_BEAM_SCORES:,}; "
                                "use a smaller beam_width or fewer rows at a time")
        rng = np.random.default_rng(seed)
        tokens, scores = dec.decode(enc, prompt, max_len, method, end, k, temperature, rng)
        return (tokens, scores) if return_scores else tokens

    def forecast(self, history, steps: int, targets=None, future=None) -> np.ndarray:
        """The next `steps` values of a series, each prediction fed back as the next step's
        input (recursive forecasting; the math: runtime/forecast.py). The model maps a window
        of features to the next value of its target features.

        history: (steps, features) one series, or (batch, steps, features); a model whose
        input declares T steps reads the last T of them (at least T are needed), so the
        first forecast is predict's on that window. targets: the positions among the input's
        features that the output's values are, in the output's order (default: from the
        spec's csv(columns=, target=), else every feature when the output has as many);
        a target that is not an input feature cannot be fed back. future: the other input
        features' known values at the forecast's times, (steps - 1 or more, others) per
        series, needed when the targets are not all the features. Returns (steps, targets)
        per series: (batch, steps, targets) for a batch of them."""
        from .runtime.forecast import Forecaster

        steps = whole_number("steps", steps, 1)
        if targets is None:
            targets = self._series_targets()
        fc = Forecaster(self.executor, targets)
        h = _float_array("history", history, self.dtype)
        one = h.ndim == 2
        if one:
            h = h[None]
        if h.ndim != 3 or h.shape[-1] != fc.features or h.shape[0] == 0 or h.shape[1] == 0:
            raise DataError(f"forecast: history must be (steps, {fc.features}) or (batch, steps, {fc.features}) "
                            f"with at least one step, got shape {np.shape(history)}")
        T = fc.steps_declared
        if T is not None:
            if h.shape[1] < T:
                raise DataError(f"forecast: the model reads windows of {T} steps; the history has {h.shape[1]}")
            h = h[:, h.shape[1] - T:]
        if fc.others:
            if future is None:
                raise DataError(f"forecast: the model predicts input features {fc.targets} of {fc.features}; the "
                                f"others ({fc.others}) are not predicted, so their future values must be given: "
                                f"future=, ({steps - 1} or more steps, {len(fc.others)}) per series")
            u = _float_array("future", future, self.dtype)
            u = u[None] if one and u.ndim == 2 else u
            if u.ndim != 3 or u.shape[0] != h.shape[0] or u.shape[1] < steps - 1 or u.shape[2] != len(fc.others):
                raise DataError(f"forecast: future must be ({steps - 1} or more steps, {len(fc.others)}) per series "
                                f"({h.shape[0]} series), got shape {np.shape(future)}")
        elif future is not None:
            raise DataError("forecast: the model predicts every input feature; future= has nothing to fill")
        else:
            u = None
        fits_memory(f"forecast: {steps:,} steps of {len(fc.targets)} value(s) for {h.shape[0]} series",
                    steps * len(fc.targets) * h.shape[0], h.itemsize)
        out = fc.forecast(np.ascontiguousarray(h), steps, u)
        return out[0] if one else out

    def _series_targets(self) -> list[int] | None:
        """The input features the output predicts, from the spec's `data = csv(..., window=)`
        (None when it does not say): its target columns' positions among its columns."""
        data = (self.graph.train or {}).get("data") or {}
        if data.get("name") != "csv" or data.get("window") is None:
            return None
        if data.get("horizon", 1) != data.get("sampling_rate", 1):
            raise DataError(f"forecast: this model predicts {data.get('horizon', 1)} row(s) after its window's "
                            f"last step, but its steps are {data.get('sampling_rate', 1)} row(s) apart "
                            "(horizon != sampling_rate in the spec's csv(...)): its predictions are not its "
                            "next step, so they cannot be fed back")
        if "target" not in data:
            return None
        target = data["target"] if isinstance(data["target"], list) else [data["target"]]
        columns = data.get("columns")
        columns = columns if isinstance(columns, list) or columns is None else [columns]
        if columns is None:
            if all(isinstance(c, int) for c in target):
                return target               # every column is an input, in the file's order
            raise DataError("forecast: the spec's csv(...) names its target columns but not its input columns; "
                            "pass targets=, the target columns' positions among the input features")
        missing = [c for c in target if c not in columns]
        if missing and {type(c) for c in target + columns} == {int, str}:
            raise DataError("forecast: the spec's csv(...) names columns by number and by name, which only the "
                            "file's header relates; pass targets=, the target columns' positions among the input "
                            "features (the CLI's --input series.csv reads the header)")
        if missing:
            raise DataError(f"forecast: target column(s) {missing} of the spec's csv(...) are not among its input "
                            f"columns {columns}: a prediction can only be fed back as an input it is; recursive "
                            "forecasting needs the target columns among the input columns")
        return [columns.index(c) for c in target]

    def _from_text(self, x):
        """x with a list of strings (for the text encoder's input, or the only input)
        replaced by the ids the encoder makes of them (one-hot for a float input)."""
        if isinstance(x, dict):
            name = self.text_encoder.input if self.text_encoder is not None else None
            return {k: (self._encode_texts(v, k) if _is_texts(v) and (k == name or len(x) == 1) else v)
                    for k, v in x.items()}
        return self._encode_texts(x, None) if _is_texts(x) or isinstance(x, str) else x

    def _encode_texts(self, texts, name: str | None):
        enc = self.text_encoder
        if enc is None:
            raise DataError("this model carries no vocabulary to read text with: train it on a text data source "
                            "(text(), csv(..., text=...), folder()) or set model.text_encoder; otherwise give "
                            "token ids")
        name = name or enc.input or self.input_names[0]
        if name not in self.input_names:
            raise DataError(f"the text encoder feeds input {name!r}, which the model does not have "
                            f"({', '.join(self.input_names)})")
        node = self.graph.nodes[self.graph.inputs[self.input_names.index(name)]]
        ids = enc.encode(texts)
        t = node.out
        if not t.is_tokens:
            if t.features is None or t.features < len(enc.vocab):
                raise DataError(f"input {name!r} takes {t.features} features, fewer than the vocabulary's "
                                f"{len(enc.vocab)} words")
            ids = np.eye(t.features, dtype=np.float32)[ids]
        return ids

    def _given_whole(self, node_id: int, a) -> bool:
        """Whether step() was given this input whole rather than one time step of it."""
        t = self.graph.nodes[node_id].out
        return not t.seq or np.ndim(a) == (2 if t.is_tokens else 3)

    def _session_step(self, given: list, whole: list[int]):
        from .runtime.decode import StepSession

        g = self.graph
        stepped = [i for i in g.inputs if i not in whole]
        if not stepped:
            raise DataError("step(): every input was given whole; give the decoder's input as one time step, "
                            "(batch,) token ids or (batch, features)")
        static = [a for i, a in zip(g.inputs, given) if i in whole]
        session = getattr(self, "_session", None)
        if session is None or not session.fits(self.executor, stepped, static):
            session = self._session = StepSession(self.executor, stepped, static)
        return session.step({i: a for i, a in zip(g.inputs, given) if i in stepped})

    def _step_plan(self):
        """The compiled single-step path when the graph is a simple stateful chain (else None)."""
        from .runtime.stepper import StepPlan

        if getattr(self, "_plan_for", None) is not self.executor:
            self._plan = StepPlan.build(self.executor) if self.device == "cpu" else None
            self._plan_for = self.executor
        return self._plan

    def reset_states(self, states=None) -> None:
        """Stateful layers forget their carried state (zeros, or `states` when given), and a
        step() over whole encoder inputs starts again."""
        self._session = None
        self.executor.reset_states(states)

    # --- training -------------------------------------------------------------------------
    def configure(self, loss=None, optimizer=None, metrics=None, from_logits=None) -> "Model":
        """Keras's compile(): loss(es), optimizer, metrics.

        optimizer: a name with Keras's defaults ("adam"), the spec's form with options
        ("adam(learning_rate=cosine_decay(0.003, 1000))"), or an Optimizer
        (rnndsl.optimizers.Adam(learning_rate=...), a number or a schedule). Anything not
        given comes from the spec's train section. from_logits=None decides by the output:
        logits unless it ends in softmax or sigmoid.
        """
        from .train.loop import configure

        self.train_config = configure(self, loss, optimizer, metrics, from_logits)
        return self

    @property
    def optimizer(self):
        """The configured optimizer (None before configure()): its learning_rate, iterations."""
        return None if self.train_config is None else self.train_config.optimizer

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None) -> float:
        """One forward pass, BPTT and optimizer step; returns the loss."""
        from .train.loop import train_on_batch

        return train_on_batch(self, x, y, sample_weight=sample_weight, class_weight=class_weight)

    def fit(self, x, y=None, batch_size=32, epochs=1, validation_data=None, validation_split=0.0, shuffle=True,
            seed=None, verbose="auto", callbacks=None, initial_epoch=0, early_stopping=None, *,
            sample_weight=None, class_weight=None, steps_per_epoch=None, distributed=None):
        """Train; returns a History whose .history maps "loss", metrics, "val_..." to per-epoch values.

        x and y are arrays, or x alone is batches: a generator or any iterable of (x, y) or
        (x, y, sample_weight) (steps_per_epoch batches an epoch, else one pass). callbacks:
        rnndsl.callbacks (Keras's), or functions fn(model, epoch, logs). sample_weight
        weighs each sample's loss, class_weight ({class: weight}) each sample's by its class.
        Under mpiexec with several ranks, data-parallel (rnndsl.distributed) unless distributed=False."""
        from .train.loop import fit

        return fit(self, x, y, batch_size, epochs, validation_data, validation_split, shuffle, seed, verbose,
                   callbacks, initial_epoch, early_stopping, sample_weight=sample_weight,
                   class_weight=class_weight, steps_per_epoch=steps_per_epoch, distributed=distributed)

    def evaluate(self, x, y, batch_size=32, return_dict=False, sample_weight=None):
        """Loss, or [loss, *metrics], in inference mode (sample_weight weighs the loss)."""
        from .train.loop import evaluate

        return evaluate(self, x, y, batch_size=batch_size, return_dict=return_dict, sample_weight=sample_weight)

    @property
    def fit_rng(self) -> np.random.Generator:
        """The generator that shuffles fit's samples (from the seed until reseeded or set)."""
        if getattr(self, "_fit_rng", None) is None:
            self._fit_rng = fit_generator(self.seed)
        return self._fit_rng

    @fit_rng.setter
    def fit_rng(self, generator: np.random.Generator) -> None:
        self._fit_rng = generator

    def reseed(self, seed: int) -> None:
        """Restart the shuffling and dropout generators from `seed`."""
        self._fit_rng = fit_generator(seed)
        self.executor.rng = np.random.default_rng([seed, 1])

    def save(self, path) -> None:
        """One file: spec, weights, optimizer state, epoch, generator states (atomic write).
        A .keras path writes a Keras 3 file instead (model and weights, no training state),
        which keras.saving.load_model reads."""
        from .saving import save_model

        save_model(self, path)

    def export(self, path) -> None:
        """Write the model for another runtime, by the file's suffix: .onnx, an ONNX graph for
        inference (rnndsl/interop/onnx.py)."""
        from pathlib import Path

        suffix = Path(path).suffix.lower()
        if suffix == ".onnx":
            from .interop.onnx import export_onnx

            return export_onnx(self, path)
        raise RnnError(f"export: no format for {str(path)!r}; the suffix picks it: .onnx")

    def load_weights(self, path) -> None:
        """Set the weights from a Keras 3 `model.weights.h5` of the same architecture."""
        from .interop.keras import load_weights

        load_weights(self, path)

    # --- weights --------------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight array, in Keras's order and layout (see weight_names())."""
        return self.executor.read_weights()

    def set_weights(self, weights) -> None:
        specs = self.graph.weight_specs()
        weights = list(weights)
        if len(weights) != len(specs):
            raise WeightsError(f"set_weights expects {len(specs)} arrays ({', '.join(w.name for _, w in specs)}), "
                               f"got {len(weights)}")
        for (node, w), value in zip(specs, weights):
            value = np.asarray(value)
            if value.shape != w.shape:
                raise WeightsError(f"layer {node.name!r}: weight {w.name} has shape {w.shape}, got {value.shape}")
        self.executor.write_weights(weights)

    # --- embeddings -----------------------------------------------------------------------
    def _embed_node(self, layer: str | None):
        embeds = [n for n in self.graph.nodes if n.kind == "embed"]
        if layer is not None:
            embeds = [n for n in embeds if n.name == layer]
        if not embeds:
            raise WeightsError(f"no embed layer{' named ' + repr(layer) if layer else ''} in the model")
        return embeds[0]

    def load_embedding_vectors(self, vocab, path=None, layer: str | None = None) -> dict:
        """Fill an embed table from a GloVe-format file (word, then floats, per line).

        `vocab` maps words to ids (a dict or rnndsl.data.Vocabulary); words the file lacks
        keep a random uniform(-0.05, 0.05) row, id 0 (padding) is zero. The path defaults to
        the layer's `weights=` option. Returns {"found": n, "missing": n, "message": text}.
        """
        from .data import load_glove

        node = self._embed_node(layer)
        path = path or node.opts.get("weights")
        if path is None:
            raise WeightsError(f"embed {node.name!r} has no weights= file and none was given")
        vocab = getattr(vocab, "word_to_id", vocab)
        vocab_size, dim = node.opts["input_dim"], node.opts["output_dim"]
        if max(vocab.values(), default=0) >= vocab_size:
            raise WeightsError(f"the vocabulary has ids up to {max(vocab.values())}, embed {node.name!r} "
                               f"holds {vocab_size} rows")
        matrix, found, missing = load_glove(path, vocab, dim, rng=np.random.default_rng([self.seed, 4]),
                                            dtype=self.executor.dtype)
        matrix[0] = 0.0
        weights = self.get_weights()
        k = self.executor.slices[node.id].start
        weights[k][:len(matrix)] = matrix
        self.set_weights(weights)
        message = (f"{node.name}: {found} of {found + len(missing)} words found in {path}; "
                   f"{len(missing)} initialised randomly" + ("" if node.opts["trainable"] else " (frozen)"))
        return {"found": found, "missing": len(missing), "missing_words": missing, "message": message}

    def nearest_words(self, query, vocab, k: int = 5, layer: str | None = None) -> list[tuple[str, float]]:
        """The k words whose embedding rows are closest to `query` (a word or a vector) by cosine."""
        from .data import nearest

        node = self._embed_node(layer)
        table = self.get_weights()[self.executor.slices[node.id].start]
        return nearest(table, query, getattr(vocab, "word_to_id", vocab), k)

    # --- gradients ------------------------------------------------------------------------
    def loss_and_gradients(self, x, y, loss="sparse_categorical_crossentropy", from_logits=True,
                           return_input_grads=False):
        """(loss, gradients aligned with get_weights(); None for non-trainable arrays).

        Training-mode forward, then full BPTT. The loss is the mean over samples (and over
        unmasked time steps for a per-step output), summed over outputs.
        """
        ex = self.executor
        tape = ex.forward(ex.prepare_inputs(x), training=True, input_grads=return_input_grads)
        value, d_outputs = output_loss(tape.outputs, target_list(y, self.output_names), loss, from_logits,
                                       self.output_names)
        w_grads, in_grads = ex.backward(tape, d_outputs)
        if return_input_grads:
            return value, w_grads, [None if g is None else (g.transpose(1, 0, 2) if g.ndim == 3 else g)
                                    for g in in_grads]
        return value, w_grads


# beam search scores rows x beams x vocabulary candidates a step, in float64 (several arrays
# of them): past this it would take gigabytes
MAX_BEAM_SCORES = 50_000_000


def _token_column(start, rows: int) -> np.ndarray:
    """start (one token id, or one per row) as a (rows, 1) column."""
    a = np.asarray(start)
    if a.ndim == 0:
        a = np.full(rows, a)
    if a.ndim != 1 or len(a) != rows:
        raise DataError(f"decode: start must be one token id or one per row ({rows}), got shape {a.shape}")
    return a.reshape(rows, 1)


def _is_texts(x) -> bool:
    """A non-empty list, tuple or array of strings (raw text rather than numbers)."""
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and len(x) > 0 and (x.dtype.kind in "US" or (
            x.dtype.kind == "O" and all(isinstance(v, str) for v in x)))
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(v, str) for v in x)


def _samples(xs: list) -> int:
    """The number of samples in the inputs (the first one's rows); no samples is an error."""
    first = xs[0] if xs else None
    if first is None or first.ndim == 0 or len(first) == 0:
        raise DataError(f"no samples: the input has shape {None if first is None else first.shape}")
    return len(first)


def compile_spec(text: str, file: str = "<spec>", name: str | None = None, **kw) -> Model:
    try:
        itemsize = np.dtype(kw.get("dtype", "float32")).itemsize
    except TypeError:
        itemsize = 4
    graph = build_graph(parse(text, file), itemsize, check_train_block)
    if name is None:
        name = "model" if file.startswith("<") else file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return Model(graph, name, **kw)


def _float_array(name: str, a, dtype: str) -> np.ndarray:
    """a as a finite float array of the model's dtype (a DataError naming it otherwise)."""
    try:
        a = np.asarray(a)
    except Exception as e:  # ragged lists and the like
        raise DataError(f"forecast: {name}: cannot make an array of it ({e})") from None
    if a.dtype.kind not in "biuf":
        raise DataError(f"forecast: {name} must hold numbers, got dtype {a.dtype}")
    a = a.astype(dtype)
    if not np.all(np.isfinite(a)):
        raise DataError(f"forecast: {name} holds NaN or inf")
    return a
