"""The graph's inputs: `input x: int[steps]` or `input x: float[steps, features]`."""

from __future__ import annotations

from .base import LayerSpec


class Input(LayerSpec):
    name = "input"
    keras_class = "InputLayer"
    keras_name = "input_layer"

    def infer(self, node, ins, ctx) -> None:  # typed by the builder from the declaration
        pass


INPUT = Input()
