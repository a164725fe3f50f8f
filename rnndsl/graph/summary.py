"""Keras-style summary table and Graphviz DOT for a layer graph."""

from __future__ import annotations

from .graph import Graph, Node


def _connected(graph: Graph, node: Node) -> str:
    parts = []
    for r in node.inputs:
        src = graph.node(r)
        parts.append(src.name if r.port == "out" else f"{src.name}.{r.port}")
    if node.initial_state is not None:
        src = graph.node(node.initial_state)
        parts.append("[" + ", ".join(graph.node(r).name for r in src.inputs) + "]" if src.spec.internal
                     else f"{src.name}.state")
    return ", ".join(parts)


def _shape(node: Node) -> str:
    shapes = [str(t) for t in node.outputs.values()]
    text = shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"
    if node.state is not None:
        text += f" +state{node.state}"
    return text


def summary_text(graph: Graph, title: str = "model") -> str:
    rows = []
    for n in graph.keras_order():           # as Keras's summary lists a functional model
        if n.spec.internal:
            continue
        rows.append((f"{n.name} ({n.spec.display_name(n)})", _shape(n), f"{n.param_count():,}", _connected(graph, n)))
    head = ("Layer (type)", "Output Shape", "Param #", "Connected to")
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(4)]
    line = lambda r: "  ".join((r[0].ljust(widths[0]), r[1].ljust(widths[1]),  # noqa: E731
                                r[2].rjust(widths[2]), r[3])).rstrip()
    total_width = sum(widths) + 6
    out = [f'Model: "{title}"', "─" * total_width, line(head), "═" * total_width]
    out += [line(r) for r in rows]
    out.append("═" * total_width)
    total, trainable = graph.count_params(), graph.count_params(True)
    out.append(f"Total params: {total:,}")
    out.append(f"Trainable params: {trainable:,}")
    out.append(f"Non-trainable params: {total - trainable:,}")
    return "\n".join(out)


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _record(*fields: str) -> str:
    """A quoted record label {a|b|c}: the characters records treat specially (braces, bars,
    angle brackets) escaped in each field, so that a layer named "a|b" stays one field."""
    special = str.maketrans({c: "\\" + c for c in '{}|<>"'} | {"\\": "\\\\"})
    return '"{' + "|".join(f.translate(special) for f in fields) + '}"'


def to_dot(graph: Graph, title: str = "model") -> str:
    """Graphviz DOT: solid edges carry sequences/vectors, dashed edges carry states."""
    out = [f"digraph {_q(title)} {{", "  rankdir=TB;", '  node [shape=record, fontname="Helvetica"];']
    for n in graph.nodes:
        if n.kind == "input":
            # an oval is not a record: its label is plain text, name over shape
            label = _q(n.name)[:-1] + "\\n" + _q(_shape(n))[1:]          # DOT's \n: a line break
            out.append(f"  n{n.id} [label={label}, shape=oval];")
            continue
        fields = [n.name, n.spec.display_name(n), _shape(n)]
        if n.weights:
            fields.append(f"{n.param_count():,} params")
        out.append(f"  n{n.id} [label={_record(*fields)}];")
    for n in graph.nodes:
        for r in n.inputs:
            attr = "" if r.port == "out" else f" [label={_q(r.port)}]"
            out.append(f"  n{r.node} -> n{n.id}{attr};")
        if n.initial_state is not None:
            out.append(f"  n{n.initial_state.node} -> n{n.id} [style=dashed, label=\"state\"];")
    for i, o in enumerate(graph.outputs):
        out.append(f"  out{i} [label={_q(o.name)}, shape=plaintext];")
        attr = "" if o.ref.port == "out" else f" [label={_q(o.ref.port)}]"      # b.forward, a.scores
        out.append(f"  n{o.ref.node} -> out{i}{attr};")
    out.append("}")
    return "\n".join(out)
