"""The CPU engine's layers: one runner per layer kind, found in FORWARD by the node's kind.

A runner is ``forward(node, W, ins, ctx, init_state) -> (outputs, backprop)``: outputs
by port (Acts, and a state tuple on "state"), backprop(d_outputs) -> (d_inputs, d_weights,
d_initial_state). The layer kinds (rnndsl/layers) say what each computes; the recurrent
plumbing shared with the CUDA engine is rnndsl/runtime/recurrent.py.
"""

from __future__ import annotations

from . import attention, batchnorm, bidirectional, dense, dropout, embed, gru, lstm, masking, merge, pooling, repeat, rnn, simplernn, state

FORWARD = {
    "embed": embed.forward,
    "dense": dense.forward,
    "batchnorm": batchnorm.forward,
    "dropout": dropout.forward,
    "masking": masking.forward,
    "global_avg_pool": pooling.avg_forward,
    "global_max_pool": pooling.max_forward,
    "flatten": pooling.flatten_forward,
    "state_part": state.part_forward,
    "state_pack": state.pack_forward,
    "repeat": repeat.forward,
    "concat": merge.concat_forward,
    "add": merge.add_forward,
    "attention": attention.forward,
    "additive_attention": attention.forward,
    "simplernn": simplernn.CELL.forward,
    "lstm": lstm.CELL.forward,
    "gru": gru.CELL.forward,
    "rnn": rnn.CELL.forward,
    **dict.fromkeys(("bidirectional", "bilstm", "bigru", "birnn"), bidirectional.forward),
}


def run_node(node, W, ins, ctx, init_state=None):
    """A node's forward on the CPU: (outputs, backprop)."""
    return FORWARD[node.kind](node, W, ins, ctx, init_state)
