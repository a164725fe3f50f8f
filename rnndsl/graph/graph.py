"""The layer graph: nodes in topological order, sequence edges and state edges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Pos
from ..types import StateType, TensorType, WeightSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..layers.base import LayerSpec


@dataclass(frozen=True)
class PortRef:
    """One output of a node: "out" (its sequence or vector), "state", "forward", "backward"
    (bidirectional, merge_mode=none), "scores" (attention's weights)."""

    node: int
    port: str = "out"


@dataclass
class Node:
    id: int
    spec: "LayerSpec"
    name: str
    opts: dict[str, Any]
    inputs: list[PortRef]
    pos: Pos
    arg_pos: dict[str, Pos] = field(default_factory=dict)
    outputs: dict[str, TensorType] = field(default_factory=dict)
    state: StateType | None = None
    initial_state: PortRef | None = None
    weights: list[WeightSpec] = field(default_factory=list)

    @property
    def out(self) -> TensorType | None:
        return self.outputs.get("out")

    @property
    def kind(self) -> str:
        return self.spec.name

    def param_count(self, trainable: bool | None = None) -> int:
        return sum(w.size for w in self.weights if trainable is None or w.trainable == trainable)

    def input_nodes(self) -> list[int]:
        ids = [p.node for p in self.inputs]
        if self.initial_state is not None:
            ids.append(self.initial_state.node)
        return ids


@dataclass
class Output:
    name: str
    ref: PortRef
    pos: Pos


@dataclass
class Graph:
    """Nodes (inputs first, then layers in topological order) and named outputs."""

    nodes: list[Node]
    inputs: list[int]
    outputs: list[Output]
    train: dict[str, Any] = field(default_factory=dict)
    train_pos: dict[str, Pos] = field(default_factory=dict)
    source: str = ""
    file: str = "<spec>"
    _order: list = field(default_factory=list, repr=False, compare=False)

    def node(self, ref: PortRef | int) -> Node:
        return self.nodes[ref.node if isinstance(ref, PortRef) else ref]

    def type_of(self, ref: PortRef):
        node = self.nodes[ref.node]
        return node.state if ref.port == "state" else node.outputs[ref.port]

    @property
    def layers(self) -> list[Node]:
        return [n for n in self.nodes if n.kind != "input"]

    def keras_order(self) -> list[Node]:
        """The nodes in the order a Keras functional model lists its layers (and so its
        weights): by depth, the longest path to an output, deepest first; at equal depth in
        the order a depth-first walk from the outputs, each node's inputs and then its
        initial state in order, first reaches them. A chain keeps its order; the Keras
        guide's encoder-decoder lists both embeddings before the two LSTMs."""
        if len(self._order) == len(self.nodes):
            return self._order
        first: dict[int, int] = {}          # node -> when the walk first reached it
        post: list[int] = []                # nodes, each after all of its inputs

        # the depth-first walk, with an explicit stack (a chain of thousands of layers is fine)
        for o in self.outputs:
            root = o.ref.node
            if root in first:
                continue
            first[root] = len(first)
            stack = [(root, iter(self.nodes[root].input_nodes()))]
            while stack:
                i, todo = stack[-1]
                for j in todo:
                    if j not in first:
                        first[j] = len(first)
                        stack.append((j, iter(self.nodes[j].input_nodes())))
                        break
                else:
                    stack.pop()
                    post.append(i)
        depth: dict[int, int] = {}
        for i in reversed(post):
            d = depth.setdefault(i, 0)
            for j in self.nodes[i].input_nodes():
                depth[j] = max(depth.get(j, 0), d + 1)
        # nodes no output reaches (none pass the checks; kept so that every weight is listed)
        rest = [n.id for n in self.nodes if n.id not in first]
        ranked = sorted(first, key=lambda i: (-depth[i], first[i]))
        self._order = [self.nodes[i] for i in ranked + rest]
        return self._order

    def weight_specs(self) -> list[tuple[Node, WeightSpec]]:
        """Every weight, in Keras's order (keras_order)."""
        return [(n, w) for n in self.keras_order() for w in n.weights]

    def count_params(self, trainable: bool | None = None) -> int:
        return sum(n.param_count(trainable) for n in self.nodes)

    def consumers(self, node_id: int) -> list[Node]:
        return [n for n in self.nodes if node_id in n.input_nodes()]
