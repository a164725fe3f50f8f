"""The cell compiler: a custom cell's description (rnndsl/layers/cells: the checked
definition and its step as an expression graph) -> kernel source.

autodiff.py differentiates the step symbolically; codegen.py schedules it (input
products hoisted out of the time loop, per-step products fused by left side) and emits
the forward and BPTT kernels for the CPU as Python source; cuda_codegen.py emits
numba.cuda kernels for the CUDA engine from the same schedule (cells it cannot express
there are refused by name: `unsupported`); cache.py writes a source under its hash and
imports it (numba cache=True then works across processes). compiler.py keeps each
cell's schedule and source. Running the kernels is the runtime's:
rnndsl/runtime/cells.py on the CPU, rnndsl/runtime/cuda/cells.py on the CUDA engine.
"""

from __future__ import annotations

from .compiler import describe, kernels, plan, source

__all__ = ["describe", "kernels", "plan", "source"]
