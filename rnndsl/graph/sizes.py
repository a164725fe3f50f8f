"""Sizes no machine could hold, refused when a spec is checked (before any allocation).

A spec is a few lines, and `lstm(10**12)` or `input x: float[10**12, 3]` is as short as
`lstm(64)`: without this check the first allocation fails (MemoryError) or, worse,
succeeds and swaps. The bounds:

* one array (a weight, or one sample's activation: steps x features) holds at most
  MAX_ARRAY_ELEMENTS = 2**31 elements (8 GiB as float32);
* all the weights together, and one sample's activations together, fit in this
  machine's physical memory.

Each refusal names the figure in elements and bytes, at the argument that asked for it.
"""

from __future__ import annotations

import os

from ..errors import DiagnosticSink, Pos

MAX_ARRAY_ELEMENTS = 2**31


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _bytes(n: int) -> str:
    """A byte count for a message: exact, with a binary-prefixed figure beside it."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n:,} bytes ({n / size:,.1f} {unit})"
    return f"{n:,} bytes"


def _culprit(node) -> Pos:
    """Where a node asks for its size: its largest whole-number argument when that is big,
    else the layer itself."""
    candidates = []
    inner = node.opts.get("layer")                 # bidirectional(lstm(...)): the wrapped layer's arguments
    for holder in (node, inner):
        if not hasattr(holder, "arg_pos") or not hasattr(holder, "opts"):
            continue
        opts, arg_pos = holder.opts, holder.arg_pos
        for key, pos in arg_pos.items():
            value = opts.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                candidates.append((value, pos))
    if node.kind == "input":
        out = node.out
        for key, value in (("steps", out.steps), ("features", out.features)):
            if value is not None and key in node.arg_pos:
                candidates.append((value, node.arg_pos[key]))
    if candidates:
        value, pos = max(candidates, key=lambda c: c[0])
        if value >= 1024:
            return pos
    return node.pos


def _per_sample(t) -> int:
    """Elements of one sample of a tensor type (a variable length counts one step)."""
    return (t.steps or 1) * (t.features or 1)


def check_scratch(node, elements: int, what: str, sink: DiagnosticSink, itemsize: int = 4) -> bool:
    """A working array of one sample that a layer makes besides its outputs (attention's
    scores, Tq x Tv): refused at the layer past MAX_ARRAY_ELEMENTS. Whether it fits."""
    if elements <= MAX_ARRAY_ELEMENTS:
        return True
    dtype = {2: "float16", 4: "float32", 8: "float64"}.get(itemsize, f"{itemsize}-byte floats")
    sink.error(_culprit(node), f"{node.name}: one sample's {what} holds {elements:,} elements, "
               f"{_bytes(elements * itemsize)} as {dtype}; rnndsl allocates at most "
               f"{MAX_ARRAY_ELEMENTS:,} elements per array", "fewer steps or features per sample")
    return False


def check_sizes(nodes, sink: DiagnosticSink, itemsize: int = 4, memory: int | None = None) -> None:
    """Report every node whose weights or activations no machine could hold (see the module)."""
    memory = physical_memory() if memory is None else memory
    dtype = {2: "float16", 4: "float32", 8: "float64"}.get(itemsize, f"{itemsize}-byte floats")
    limit = f"rnndsl allocates at most {MAX_ARRAY_ELEMENTS:,} elements per array"
    total_params, total_acts = 0, 0
    biggest_params = biggest_acts = None
    for node in nodes:
        bad = False
        for w in node.weights:
            if w.size > MAX_ARRAY_ELEMENTS:
                shape = "(" + ", ".join(f"{d:,}" for d in w.shape) + ")"
                sink.error(_culprit(node), f"{node.name}: the weight {w.name.rsplit('/', 1)[-1]} of shape {shape} "
                           f"holds {w.size:,} elements, {_bytes(w.size * itemsize)} as {dtype}; {limit}",
                           "a layer of this size cannot be allocated: use fewer units (or a smaller vocabulary)")
                bad = True
                break
        if not bad:
            for port, t in node.outputs.items():
                n = _per_sample(t)
                if n > MAX_ARRAY_ELEMENTS:
                    what = f"input {node.name}: one sample" if node.kind == "input" else \
                        f"{node.name}: one sample of its output"
                    sink.error(_culprit(node), f"{what} {t} holds {n:,} elements, "
                               f"{_bytes(n * itemsize)} as {dtype}; {limit}",
                               "fewer steps or features per sample")
                    bad = True
                    break
        if bad:
            return          # one refusal is enough: the totals below would repeat it
        params = node.param_count()
        total_params += params
        if biggest_params is None or params > biggest_params[0]:
            biggest_params = (params, node)
        acts = sum(_per_sample(t) for t in node.outputs.values())
        total_acts += acts
        if biggest_acts is None or acts > biggest_acts[0]:
            biggest_acts = (acts, node)
    if memory is None:
        return
    if biggest_params is not None and total_params * itemsize > memory:
        sink.error(_culprit(biggest_params[1]),
                   f"the weights take {_bytes(total_params * itemsize)} ({total_params:,} parameters as {dtype}), "
                   f"more than this machine's memory, {_bytes(memory)}",
                   f"the largest layer is {biggest_params[1].name} with {biggest_params[0]:,} parameters")
    elif biggest_acts is not None and total_acts * itemsize > memory:
        sink.error(_culprit(biggest_acts[1]),
                   f"one sample's activations take {_bytes(total_acts * itemsize)} ({total_acts:,} values as "
                   f"{dtype}), more than this machine's memory, {_bytes(memory)}",
                   f"the largest output is {biggest_acts[1].name}'s, {biggest_acts[0]:,} values per sample")
