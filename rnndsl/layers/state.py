"""States in and out of a model: the graph's own nodes for a state's parts.

    output h, c = enc.state         state_part nodes: part k of the state, a vector (batch, units_k)
    input h0: float[64]
    ... lstm(64, initial_state=[h0, c0])
                                    a state_pack node: the vectors, as the state the layer starts from

Neither is a layer a spec calls by name nor one Keras lists: a model's summary leaves
them out (Keras's return_state outputs and initial_state inputs are the layers' own).
Gradients pass through both: into the state a part came from, and out to the vectors a
state was packed from.
"""

from __future__ import annotations

from .base import LayerSpec


class StatePart(LayerSpec):
    """opts["part"]: which part of the state (its input, a `.state` port) this node gives."""

    name = "state_part"
    per_step = True
    keras_class = "StatePart"
    keras_name = "state_part"
    internal = True

    def infer(self, node, ins, ctx) -> None:
        """Typed by the graph builder from the state it reads (a state is not a TensorType)."""


class StatePack(LayerSpec):
    """The vectors of its inputs as one state (node.state, the StateType of the layer it
    feeds, set by the graph builder)."""

    name = "state_pack"
    per_step = True
    keras_class = "StatePack"
    keras_name = "initial_state"
    internal = True

    def infer(self, node, ins, ctx) -> None:
        """Checked and typed by the graph builder against the layer the state goes to."""


STATE_PART, STATE_PACK = StatePart(), StatePack()
