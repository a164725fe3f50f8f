"""Model: a compiled spec. The front (summary, counts, graph) lives here; running,
weights and training are attached by rnndsl.runtime and rnndsl.train."""

from __future__ import annotations

from .graph.build import build_graph
from .graph.graph import Graph
from .graph.summary import summary_text, to_dot
from .lang.parser import parse


class Model:
    def __init__(self, graph: Graph, name: str = "model", dtype: str = "float32", seed: int = 0):
        self.graph = graph
        self.name = name
        self.dtype = dtype
        self.seed = seed

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


def compile_spec(text: str, file: str = "<spec>", name: str | None = None, **kw) -> Model:
    graph = build_graph(parse(text, file))
    if name is None:
        name = "model" if file.startswith("<") else file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return Model(graph, name, **kw)
