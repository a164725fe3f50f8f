"""What SimpleRNN, LSTM and GRU share: options, shape rule, state port, weights.

A recurrent layer reads a sequence x (batch, steps, features) and runs a cell
over the steps, h_t = cell(x_t, h_{t-1}). It returns the last output
(batch, units), or every output (batch, steps, units) with `seq`
(return_sequences), and its final state on the `.state` port with `state`
(return_state). Its weights are the input kernel W (features, G*units), the
recurrent kernel U (units, G*units) and a bias, G being the number of gates.
"""

from __future__ import annotations

from ..types import StateType, TensorType, WeightSpec
from .base import RECURRENT_ACTIVATIONS, LayerSpec, Opt

COMMON_OPTIONS = {
    "units": Opt("units", required=True, doc="64"),
    "activation": Opt("activation", "tanh", RECURRENT_ACTIVATIONS),
    "use_bias": Opt("bool", True),
    "dropout": Opt("rate", 0.0),
    "recurrent_dropout": Opt("rate", 0.0),
    "go_backwards": Opt("bool", False),
    "stateful": Opt("bool", False),
    "return_sequences": Opt("bool", False),
    "return_state": Opt("bool", False),
    "initial_state": Opt("state", None),
    "zero_output_for_mask": Opt("bool", False),
    "trainable": Opt("bool", True),
    "name": Opt("string", None),
}
GATED_OPTIONS = {**COMMON_OPTIONS, "recurrent_activation": Opt("activation", "sigmoid", RECURRENT_ACTIVATIONS)}
FLAGS = {"seq": ("return_sequences", True), "state": ("return_state", True)}

class RecurrentSpec(LayerSpec):
    recurrent = True
    positional = ("units",)
    flags = FLAGS
    gates = 1
    state_names: tuple[str, ...] = ("h",)

    def state_type(self, opts) -> StateType:
        return StateType(self.name, tuple((n, opts["units"]) for n in self.state_names))

    def stepwise(self, node, stepped: list[bool]) -> bool:
        return not node.opts["go_backwards"]

    def bias_shape(self, opts) -> tuple[int, ...]:
        return (self.gates * opts["units"],)

    def bias_init(self, opts) -> str:
        return "zeros"

    def cell_weights(self, opts, features: int, prefix: str) -> list[WeightSpec]:
        u, g, tr = opts["units"], self.gates, opts.get("trainable", True)
        ws = [WeightSpec(f"{prefix}/kernel", (features, g * u), "glorot_uniform", tr),
              WeightSpec(f"{prefix}/recurrent_kernel", (u, g * u), "orthogonal", tr)]
        if opts["use_bias"]:
            ws.append(WeightSpec(f"{prefix}/bias", self.bias_shape(opts), self.bias_init(opts), tr))
        return ws

    def check_input(self, node, x: TensorType, ctx) -> bool:
        if x.is_tokens:
            ctx.error(node, f"{self.name} takes a sequence of feature vectors, but its input is "
                      f"{x.describe()}", "put embed(vocab, dim) in front of it to turn ids into vectors")
            return False
        if not x.seq:
            ctx.error(node, f"{self.name} needs a sequence, but its input is {x.describe()}",
                      ctx.seq_hint(node, 0))
            return False
        return True

    def infer(self, node, ins, ctx) -> None:
        (x,) = ins
        if not self.check_input(node, x, ctx):
            return
        u = node.opts["units"]
        node.weights = self.cell_weights(node.opts, x.features, node.name)
        if node.opts["return_sequences"]:
            node.outputs["out"] = TensorType(True, u, x.steps, masked=x.masked)
        else:
            node.outputs["out"] = TensorType(False, u)
        node.state = self.state_type(node.opts) if node.opts["return_state"] else None

    def takes_state(self, node) -> StateType:
        return self.state_type(node.opts)
