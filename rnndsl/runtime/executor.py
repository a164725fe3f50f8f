"""Runs a layer graph: inputs are checked, then each node's forward (runtime/cpu, by
layer kind) runs in graph order and leaves a backprop closure on a tape; backward walks
the tape in reverse, summing gradients where a value fans out.

Python runs here once per layer per batch; the time loops are inside the
layers' compiled kernels.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, NonFiniteError
from ..graph.graph import Graph, Node
from ..graph.sizes import physical_memory
from .init import initial_weights
from ..kernels.cpu import buffers
from ..kernels.cpu.ops import all_finite, ids_outside
from .cpu import run_node
from .tensor import Act
from .threads import use_threads


@dataclass
class RunCtx:
    """What a layer's runner sees besides its weights and inputs."""

    training: bool
    rng: np.random.Generator
    executor: "Executor"
    updates: list = field(default_factory=list)   # (array, new value): applied only by a train step
    input_grads: bool = True      # whether backward must produce the model inputs' gradients
    carry: dict | None = None     # decoding: node id -> the state its previous step left (decode.py)
    # data-parallel training (train/distributed.py): the sum over ranks of a float vector, for
    # statistics over the global batch (batchnorm's moments); None in one process
    allreduce: object = None
    generation: int = -1          # the executor's weights_generation when this run began

    def __post_init__(self):
        self.generation = self.executor.weights_generation

    def needs_grad(self, ref) -> bool:
        """Whether the gradient flowing back into this input of a layer is used: not when it
        is a model input and nobody asked for input gradients (a train step), nor when it is
        a frozen embedding's output: the product dX = dZ W^T is then skipped (a third of a
        wide first layer's backward)."""
        producer = self.executor.graph.nodes[ref.node]
        if producer.kind == "input":
            return self.input_grads
        return not (producer.kind == "embed" and not producer.opts["trainable"])

    def sole_reader(self, node: Node, ref) -> bool:
        """Whether node is the only one to read this value (no other layer, no model
        output): its gradient is then node's alone, in whatever form node gives it."""
        return self.executor.readers.get((ref.node, ref.port)) == [node.id]

    def stateful_state(self, node: Node, batch: int):
        return self.executor.stateful_state(node, batch)

    def keep_state(self, node: Node, state: tuple) -> None:
        self.executor.states[node.id] = tuple(np.array(s, copy=True) for s in state)

    def derived(self, key, sources: tuple, make, now: bool = True):
        """make(): an array computed from the weight arrays `sources` alone (a projected
        table, packed panels), which the caller only reads. Inference keeps it in the
        executor for the next call: every write of the weights empties that store
        (Executor.writing_weights), an entry serves only the same source arrays, and one
        made while a write ran (another thread's) or larger than KEEP_MAX_BYTES is not kept.
        In training it is made afresh. With now=False, a first request at these weights
        returns None (the caller takes a route without it) and the second makes it:
        for what pays only when the weights are read again unchanged."""
        if self.training:
            return make()
        ex = self.executor
        known = ex.derived.get(key)
        if known is not None and _same_arrays(known[0], sources):
            if known[1] is not None:
                return known[1]
            now = True                  # asked for before at these weights: it is read again
        generation = ex.weights_generation
        value = make() if now else None
        if value is None or self.keeps(value.nbytes):
            with ex.derived_lock:       # not kept if the weights were written meanwhile
                if ex.weights_generation == generation:
                    ex.derived[key] = (sources, value)
        return value

    def keeps(self, nbytes: int) -> bool:
        """Whether derived would keep an array of this size between calls."""
        return not self.training and nbytes <= KEEP_MAX_BYTES

    def prepares(self, stateful: bool) -> bool:
        """Whether keep_prepared keeps what a layer makes ready: inference outside decoding,
        the layer not stateful (its carried state is read and written by its full forward)."""
        return not self.training and self.carry is None and not stateful

    def keep_prepared(self, node: Node, W: list, again) -> None:
        """Keep a layer's inference made ready (again(ins, init_state, ctx) -> (outputs,
        backprop), or None where it does not fit them) for the next calls at these weights,
        beside the PREPARED_PER_LAYER - 1 kept last (a predict's last, shorter batch; batch
        sizes that alternate): not kept if the weights were written since this call began
        (every write empties the store, as derived's)."""
        ex = self.executor
        with ex.derived_lock:
            if ex.weights_generation == self.generation:
                known = ex.prepared.get(node.id)
                kept = known[1] if known is not None and _same_arrays(known[0], W) else ()
                ex.prepared[node.id] = (list(W), (again,) + kept[:PREPARED_PER_LAYER - 1])

    def prepared(self, node: Node, W: list) -> tuple:
        """What keep_prepared kept for this layer at these weight arrays (the latest first),
        in inference outside decoding; else ()."""
        if self.training or self.carry is not None:
            return ()
        known = self.executor.prepared.get(node.id)
        if known is None or not _same_arrays(known[0], W):
            return ()
        return known[1]

    def run_prepared(self, node: Node, W: list, ins: list, init_state):
        """A layer's forward by the first kept call (prepared) that fits these inputs:
        (outputs, backprop), or None (nothing run: the caller runs its full forward)."""
        for again in self.prepared(node, W):
            done = again(ins, init_state, self)
            if done is not None:
                return done
        return None


# Largest array RunCtx.derived keeps between calls: a larger one is made each call (its
# memory the call's alone, as before anything was kept)
KEEP_MAX_BYTES = 64 << 20
# Calls made ready a layer keeps (RunCtx.keep_prepared), each for one shape of its input
PREPARED_PER_LAYER = 4


def _same_arrays(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


@dataclass
class Tape:
    entries: list
    outputs: list[Act]
    values: dict


class Executor:
    def __init__(self, graph: Graph, dtype: str = "float32", seed: int = 0):
        self.graph = graph
        self.dtype = np.dtype(dtype)
        self.pool = buffers.Pool()        # a train step's arrays, reused by the next (buffers.py)
        specs = [w for _, w in graph.weight_specs()]
        self.params: list[np.ndarray] = initial_weights(specs, seed, self.dtype)
        self.slices: dict[int, slice] = {}
        k = 0
        for n in graph.keras_order():       # the order of weight_specs
            self.slices[n.id] = slice(k, k + len(n.weights))
            k += len(n.weights)
        self.trainable = [w.trainable for w in specs]
        self._kept: dict[int, np.ndarray] = {}     # the weights before an update (apply_update)
        self.derived: dict = {}            # key -> (source weights, array made from them): RunCtx.derived
        self.prepared: dict = {}           # node id -> (its weights, its inference made ready): RunCtx.prepared
        self.weights_generation = 0        # counts the writes of the weights (their starts and ends)
        self.derived_lock = threading.Lock()
        self.states: dict[int, tuple] = {}
        self.state_batch: dict[int, int] = {}
        self.reset_to: dict[int, tuple] = {}
        self.rng = np.random.default_rng([seed, 1])
        self.allreduce = None          # set by a data-parallel fit (RunCtx.allreduce)
        self.vocab_limits = self._vocab_limits()
        self.memory = physical_memory()      # bytes (None: unknown), the bound of an input's copy
        self.readers: dict[tuple, list] = {}          # (node, port) -> ids of the layers reading it
        for n in graph.nodes:
            for r in n.inputs:
                self.readers.setdefault((r.node, r.port), []).append(n.id)
        for o in graph.outputs:
            self.readers.setdefault((o.ref.node, o.ref.port), []).append(-1)

    # --- weights (host arrays here; a device executor copies) ----------------------------
    def read_weights(self) -> list[np.ndarray]:
        return [p.copy() for p in self.params]

    def write_weights(self, weights) -> None:
        with self.writing_weights():
            for p, value in zip(self.params, weights):
                p[...] = np.asarray(value, dtype=p.dtype)

    @contextmanager
    def writing_weights(self):
        """Around every write of the weights: what inference derived from them goes, at the
        write's start and at its end (so that nothing derived while it ran is kept)."""
        self.weights_changed()
        try:
            yield
        finally:
            self.weights_changed()

    def weights_changed(self) -> None:
        """What inference derived from the weights goes (writing_weights calls it)."""
        with self.derived_lock:
            self.weights_generation += 1
            self.derived.clear()
            self.prepared.clear()

    def apply_deferred(self, updates) -> None:
        """A train step's deferred writes of non-trainable weights (batchnorm's moving
        statistics): (array, new value) pairs."""
        if updates:
            with self.writing_weights():
                for arr, new in updates:
                    arr[...] = new

    def apply_update(self, optimizer, grads, grad_sums=None) -> None:
        with self.writing_weights():
            self._apply_update(optimizer, grads, grad_sums)

    def _apply_update(self, optimizer, grads, grad_sums=None) -> None:
        """One optimizer step of the weights. Should it leave a weight NaN or inf (an
        overflow that finite gradients can still cause), the weights and the optimizer's
        state go back to what they were and NonFiniteError names the weights. Where the
        optimizer proves the step stays finite (Optimizer.stays_finite; grad_sums: each
        gradient's sum |g|, where the caller has them), no copy of the weights is taken for
        that (a copy of the model each step: time and peak memory)."""
        live = [i for i, g in enumerate(grads) if g is not None]
        if optimizer.stays_finite([self.params[i] for i in live], [grads[i] for i in live],
                                  None if grad_sums is None else [grad_sums[i] for i in live]):
            optimizer.apply(self.params, grads)      # proven finite: nothing to go back to
            return
        kept = self._kept
        for i in live:                       # arrays kept from step to step
            if i not in kept or kept[i].shape != self.params[i].shape or kept[i].dtype != self.params[i].dtype:
                kept[i] = np.empty_like(self.params[i])
            np.copyto(kept[i], self.params[i])
        optimizer.keep_state()
        with np.errstate(over="ignore", invalid="ignore"):     # checked just below, and said once
            optimizer.apply(self.params, grads)
        bad = [i for i in live if not all_finite(self.params[i].reshape(-1))]
        if bad:
            for i in live:
                np.copyto(self.params[i], kept[i])
            optimizer.restore_state()
            raise NonFiniteError(f"the update made weights NaN or inf (in {self._weight_names(bad)})")

    def _weight_names(self, indices) -> str:
        names = [w.name for _, w in self.graph.weight_specs()]
        return ", ".join(names[i] for i in indices[:3]) + (", ..." if len(indices) > 3 else "")

    # --- stateful layers ----------------------------------------------------------------
    def stateful_state(self, node: Node, batch: int):
        known = self.state_batch.get(node.id)
        if known is not None and known != batch:
            raise DataError(f"stateful layer {node.name!r} holds state for batch size {known}, "
                            f"but this call has batch size {batch}; keep the batch size fixed, "
                            "or call reset_states() first")
        self.state_batch[node.id] = batch
        if node.id in self.states:
            return self.states[node.id]
        if node.id in self.reset_to:
            return self.reset_to[node.id]
        return None

    def export_states(self) -> dict:
        """Carried states as host arrays (Model.to moves them to another executor)."""
        def copy(d):
            return {k: tuple(np.array(s, copy=True) for s in v) for k, v in d.items()}
        return {"states": copy(self.states), "batch": dict(self.state_batch), "reset_to": copy(self.reset_to)}

    def import_states(self, d: dict) -> None:
        def conv(m):
            return {k: tuple(np.asarray(s, dtype=self.dtype) for s in v) for k, v in m.items()}
        self.states, self.reset_to = conv(d["states"]), conv(d["reset_to"])
        self.state_batch = dict(d["batch"])

    def reset_states(self, states=None) -> None:
        """Forget carried states (back to zeros, or to `states` for the one stateful layer given)."""
        self.states.clear()
        self.state_batch.clear()
        self.reset_to.clear()
        if states is not None:
            stateful = [n for n in self.graph.nodes if n.opts.get("stateful")
                        or (n.opts.get("layer") is not None and getattr(n.opts["layer"], "opts", {}).get("stateful"))]
            if len(stateful) != 1:
                raise DataError(f"reset_states(states) needs exactly one stateful layer, the model has {len(stateful)}")
            node = stateful[0]
            self.reset_to[node.id] = self._checked_states(node, states)
            # the states fix the batch size, as a call does (stateful_state checks the next calls)
            self.state_batch[node.id] = self.reset_to[node.id][0].shape[0]

    def _checked_states(self, node: Node, states) -> tuple:
        """states as arrays of the executor's dtype, each (batch, units) of the layer's state
        parts and one batch size for all: a DataError otherwise (predict, step() and the
        CUDA engine then all read well-shaped states, never broadcast ones)."""
        parts = node.spec.takes_state(node).parts
        want = ", ".join(f"{n} (batch, {u})" for n, u in parts)
        if isinstance(states, np.ndarray) and states.ndim == 2 and len(parts) == 1:
            states = [states]
        if not isinstance(states, (list, tuple)) or len(states) != len(parts):
            n = len(states) if isinstance(states, (list, tuple)) else type(states).__name__
            raise DataError(f"reset_states: layer {node.name!r} has {len(parts)} state(s), {want}; got {n}")
        out = []
        for (name, u), s in zip(parts, states):
            try:
                a = np.asarray(s, dtype=self.dtype)
            except (TypeError, ValueError) as e:
                raise DataError(f"reset_states: state {name} of layer {node.name!r} is not an array of "
                                f"numbers ({e})") from None
            if a.ndim != 2 or a.shape[1] != u or a.shape[0] == 0 or (out and a.shape[0] != out[0].shape[0]):
                raise DataError(f"reset_states: state {name} of layer {node.name!r} has shape {a.shape}; "
                                f"expected {want}" + (f" with batch {out[0].shape[0]}" if out else ""))
            out.append(a)
        return tuple(out)

    # --- inputs -------------------------------------------------------------------------
    def _vocab_limits(self) -> dict[int, tuple[int, str]]:
        """For each token input, the smallest vocabulary among the embeds that read it."""
        limits = {}
        for n in self.graph.nodes:
            if n.kind == "embed":
                src = n.inputs[0].node
                v = n.opts["input_dim"]
                if src not in limits or v < limits[src][0]:
                    limits[src] = (v, n.name)
        return limits

    def prepare_inputs(self, xs) -> list[Act]:
        """Check user arrays against the declared inputs; batch-major in, time-major out (float
        sequences lazily: see Act)."""
        names = [self.graph.nodes[i].name for i in self.graph.inputs]
        if isinstance(xs, dict):
            missing = [n for n in names if n not in xs]
            extra = [k for k in xs if k not in names]
            if missing or extra:
                raise DataError(f"inputs by name: expected {names}, missing {missing}, unknown {extra}")
            xs = [xs[n] for n in names]
        elif not isinstance(xs, (list, tuple)):
            xs = [xs]
        if len(xs) != len(names):
            raise DataError(f"the model takes {len(names)} input(s) ({', '.join(names)}), got {len(xs)}")
        acts, batch = [], None
        for name, node_id, x in zip(names, self.graph.inputs, xs):
            act = self._prepare_one(name, node_id, x)
            shape = act.shape
            b = shape[1] if len(shape) >= 2 and self.graph.nodes[node_id].out.seq else shape[0]
            if batch is not None and b != batch:
                raise DataError(f"input {name!r} has batch size {b}, the others {batch}")
            batch = b
            acts.append(act)
        return acts

    def _prepare_one(self, name: str, node_id: int, x, any_steps: bool = False) -> Act:
        t = self.graph.nodes[node_id].out
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise DataError(f"input {name!r}: cannot make an array of it ({e})") from None

        def want():         # the declared shape, for a message (worded only when one is raised)
            return f"(batch, {'?' if t.steps is None else t.steps}" + (")" if t.is_tokens else f", {t.features})") \
                if t.seq else f"(batch, {t.features})"

        rank = 2 if (t.is_tokens or not t.seq) else 3
        if x.ndim != rank:
            raise DataError(f"input {name!r} expects shape {want()}, got {x.shape}")
        if t.seq and t.steps is not None and x.shape[1] != t.steps and not any_steps:
            raise DataError(f"input {name!r} expects {t.steps} steps, shape {want()}, got {x.shape}")
        if not t.is_tokens and x.shape[-1] != t.features:
            raise DataError(f"input {name!r} expects {t.features} features, shape {want()}, got {x.shape}")
        if x.shape[0] == 0:
            raise DataError(f"input {name!r} is empty, shape {x.shape}")
        # the copy below (a view of a small array, np.broadcast_to, can claim any size)
        need, memory = x.size * (8 if t.is_tokens else self.dtype.itemsize), self.memory
        if memory is not None and need > memory:
            raise DataError(f"input {name!r} of shape {x.shape} needs {need:,} bytes as the model's array, more "
                            f"than this machine's memory ({memory:,} bytes); pass fewer rows at a time")
        if t.is_tokens:
            if x.dtype.kind == "f":
                if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
                    raise DataError(f"input {name!r} expects token ids (integers), got float values "
                                    f"such as {x.ravel()[np.flatnonzero(x != np.round(x))[:1]].tolist() or 'nan/inf'}")
            elif x.dtype.kind not in "iub":
                raise DataError(f"input {name!r} expects token ids (integers), got dtype {x.dtype}")
            ids = np.ascontiguousarray(x.T, dtype=np.int64)       # time-major, one copy
            lim = self.vocab_limits.get(node_id)
            # one compiled pass over the ids; min and max only to word an error
            if ids.size and ids_outside(ids.reshape(-1), lim[0] if lim else np.iinfo(np.int64).max):
                bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
                raise DataError(f"input {name!r}: token id {bad} is out of range for {lim[1]!r} "
                                f"(vocabulary {lim[0]}: ids 0..{lim[0] - 1})" if lim else
                                f"input {name!r}: token id {bad} is negative")
            return Act(ids)
        if x.dtype.kind not in "fiub":
            raise DataError(f"input {name!r} expects numbers, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if not all_finite(x.reshape(-1)):
            where = np.argwhere(~np.isfinite(x))[0].tolist()
            raise DataError(f"input {name!r} holds NaN or inf (first at index {tuple(where)})")
        if t.seq:
            return Act(batch_major=x)          # made time-major when (and as far as) a layer needs it
        return Act(x)

    # --- forward and backward -----------------------------------------------------------
    def forward(self, inputs: list[Act], training: bool, ctx: RunCtx | None = None,
                input_grads: bool = True) -> Tape:
        """Run the graph in order; the tape keeps each node's backprop closure."""
        ctx = ctx or self._new_ctx(training, input_grads)
        values: dict = {}
        for k, nid in enumerate(self.graph.inputs):
            values[(nid, "out")] = self._engine_input(inputs[k])
        entries = self.run_nodes([n for n in self.graph.nodes if n.kind != "input"], values, ctx)
        outputs = [self._output(values[(o.ref.node, o.ref.port)]) for o in self.graph.outputs]
        tape = Tape(entries, outputs, values)
        tape.ctx = ctx
        return tape

    def run_nodes(self, nodes, values: dict, ctx) -> list:
        """Run these layers in order, reading and adding to `values` ((node, port) -> the
        engine's value); returns their (node, backprop) tape entries."""
        entries = []
        for node in nodes:
            ins = [values[(r.node, r.port)] for r in node.inputs]
            init = values[(node.initial_state.node, "state")] if node.initial_state is not None else None
            W = self.params[self.slices[node.id]]
            outs, backprop = self._run_node(node, W, ins, ctx, init)
            for port, v in outs.items():
                values[(node.id, port)] = v
            entries.append((node, backprop))
        return entries

    # --- decoding (runtime/decode.py) ------------------------------------------------------
    def decode_ctx(self):
        """An inference context that carries each recurrent layer's state from call to call."""
        ctx = self._new_ctx(False, False)
        ctx.carry = {}
        return ctx

    def engine_input(self, node_id: int, x, any_steps: bool = False):
        """One model input (a user array) checked and made the engine's value; any_steps: a
        sequence of any length, whatever steps the input declares (a decoder's one step)."""
        return self._engine_input(self._prepare_one(self.graph.nodes[node_id].name, node_id, x, any_steps))

    def host_output(self, v) -> np.ndarray:
        """An engine value as a host array (batch-major for sequences)."""
        data = self._output(v).data
        return data.transpose(1, 0, 2) if data.ndim == 3 else data

    def take_rows(self, state: tuple, rows: np.ndarray) -> tuple:
        """A state's rows in a new order (beam search's parents)."""
        return tuple(np.ascontiguousarray(s[rows]) for s in state)

    # --- what a device executor replaces ------------------------------------------------
    def _new_ctx(self, training: bool, input_grads: bool) -> RunCtx:
        use_threads()
        return RunCtx(training, self.rng, self, input_grads=input_grads,
                      allreduce=self.allreduce if training else None)

    def _engine_input(self, act):
        return act

    def _run_node(self, node, W, ins, ctx, init):
        return run_node(node, W, ins, ctx, init)

    def _output(self, v):
        return v

    def _add(self, a, b):
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype:
            return np.add(a, b, out=buffers.empty(a.shape, a.dtype))    # the step's pool: a spent array may hold it
        return a + b

    def _zeros_like(self, param):
        return np.zeros_like(param)

    def _to_engine(self, g):
        return g

    def _walk_tape(self, tape: Tape, d_outputs):
        """(weight gradients, gradients by (node, port)): the tape in reverse, fan-out summed."""
        grads: dict = {}

        def add(key, g):
            if g is None:
                return
            if key in grads:
                old = grads[key]
                grads[key] = tuple(self._add(a, b) for a, b in zip(old, g)) if isinstance(g, tuple) \
                    else self._add(old, g)
            else:
                grads[key] = g

        for o, d in zip(self.graph.outputs, d_outputs):
            if d is not None:
                d = tuple(self._to_engine(x) for x in d) if isinstance(d, tuple) else self._to_engine(d)
            add((o.ref.node, o.ref.port), d)
        w_grads: list = [None] * len(self.params)
        entries, values = tape.entries, tape.values
        while entries:
            # the tape is consumed as it is walked: a layer's outputs (their readers are done)
            # and, once its backprop has run, its closure (what it saved) are let go, so that a
            # train step's arrays whose use is over serve the layers still to come
            # (kernels/cpu/buffers.py)
            node, backprop = entries.pop()
            for port in (*node.outputs, "state"):
                values.pop((node.id, port), None)
            d_out = {port: grads.pop((node.id, port), None) for port in (*node.outputs, "state")}
            sl = self.slices[node.id]
            if all(v is None for v in d_out.values()):
                for i in range(sl.start, sl.stop):
                    if self.trainable[i]:
                        w_grads[i] = self._zeros_like(self.params[i])
                continue
            d_ins, d_W, d_init = backprop(d_out)
            for r, g in zip(node.inputs, d_ins):
                add((r.node, r.port), g)
            if node.initial_state is not None:
                add((node.initial_state.node, "state"), d_init)
            for i, g in zip(range(sl.start, sl.stop), d_W):
                w_grads[i] = g if self.trainable[i] else None
            # (the names let go too: the next layer's backprop runs before they are bound again)
            backprop = d_out = d_ins = d_W = d_init = g = None
        return w_grads, grads

    def backward(self, tape: Tape, d_outputs: list[np.ndarray | None]):
        """Gradients of the weights (None where not trainable) and of the float inputs. Consumes
        the tape (its entries and values; its outputs and ctx stay)."""
        w_grads, grads = self._walk_tape(tape, d_outputs)
        in_grads = [grads.get((nid, "out")) for nid in self.graph.inputs]
        return w_grads, in_grads
