"""Types that flow along the edges of the layer graph, and a weight's description: what layers,
graph and every level above them share (the bottom level, with errors)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class TensorType:
    """A batch of values: a sequence `(batch, steps, features)` or a vector `(batch, features)`.

    Token-id sequences have `dtype == "int"` and `features is None`: `(batch, steps)`.
    `steps is None` is a variable length. `masked` says a mask travels with it.
    """

    seq: bool
    features: int | None
    steps: int | None = None
    dtype: str = "float"
    masked: bool = False

    @property
    def is_tokens(self) -> bool:
        return self.dtype == "int"

    def keras_shape(self) -> tuple:
        if not self.seq:
            return (None, self.features)
        if self.is_tokens:
            return (None, self.steps)
        return (None, self.steps, self.features)

    def with_(self, **changes) -> "TensorType":
        return replace(self, **changes)

    def __str__(self) -> str:
        return "(" + ", ".join("None" if d is None else str(d) for d in self.keras_shape()) + ")"

    def describe(self) -> str:
        if self.is_tokens:
            return f"a sequence of token ids {self}"
        return f"a sequence {self}" if self.seq else f"a vector {self}"


@dataclass(frozen=True)
class StateType:
    """The state a recurrent layer exposes on its `.state` port, in Keras's order.

    `parts` is ((name, units), ...): lstm (h, c); gru and simplernn (h,);
    bidirectional: the forward layer's parts then the backward layer's.
    """

    cell: str
    parts: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        return "(" + ", ".join(f"{n}[{u}]" for n, u in self.parts) + ")"

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(u for _, u in self.parts)

    def fits(self, other: "StateType") -> bool:
        return self.sizes == other.sizes and [n for n, _ in self.parts] == [n for n, _ in other.parts]


@dataclass(frozen=True)
class WeightSpec:
    """One weight array, named and laid out as Keras names and lays it out."""

    name: str
    shape: tuple[int, ...]
    init: str
    trainable: bool = True

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n
