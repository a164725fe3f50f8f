"""Compile every CUDA kernel for a real GPU, without one: a check the simulator cannot make.

The simulator runs kernels as Python, so code it accepts may still fail
numba's CUDA type inference or NVVM. This script closes that gap in two steps:

    # 1. under the simulator: run cases.py and record each launched kernel's argument types
    NUMBA_ENABLE_CUDASIM=1 python tests/cuda_engine/ptx_check.py record sigs.json
    # 2. where numba-cuda and NVVM are installed (pip install "numba-cuda[cu12]"; no GPU needed):
    python tests/cuda_engine/ptx_check.py compile sigs.json [cc, default 9.0]

Step 2 builds the kernels with the hardware geometry and compiles each
recorded signature to PTX (cuda.compile_ptx), printing one line per kernel
and exiting 1 on any failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _kernel_table():
    """id(kernel object) -> (module, name, dtype, tile) for every kernel the engine can launch."""
    from rnndsl.kernels.cuda import attention, cells, gemm, geometry, ops, optim

    table = {}
    g = geometry.geometry()
    for dt in DTYPES:
        for mod in (attention, cells, ops, optim):
            for name, k in vars(mod.build(dt)).items():
                table[id(k)] = (mod.__name__.rsplit(".", 1)[1], name, dt.name, None)
        for which, tile in (("big", g.gemm_big), ("small", g.gemm_small)):
            table[id(gemm.make(dt, tile))] = ("gemm", "gemm", dt.name, which)
    return table


def _arg_type(a):
    """A JSON description of a launch argument's numba type."""
    ary = getattr(a, "_ary", a)              # the simulator's device arrays wrap a NumPy array
    if isinstance(ary, np.ndarray):
        layout = "C" if ary.flags.c_contiguous else ("F" if ary.flags.f_contiguous else "A")
        return ["array", ary.dtype.name, ary.ndim, layout]
    if isinstance(a, (bool, np.bool_)):
        return ["scalar", "bool"]
    if isinstance(a, int):
        return ["scalar", "int64"]
    if isinstance(a, float):
        return ["scalar", "float64"]
    if isinstance(a, np.generic):
        return ["scalar", a.dtype.name]
    raise TypeError(f"unexpected kernel argument {type(a)}")


def record(path: str) -> int:
    from numba.cuda.simulator import kernel as sim

    sys.path.insert(0, str(Path(__file__).parent))
    import cases

    seen = {}
    original = sim.FakeCUDAKernel.__call__

    def call(self, *args):
        if not self._device:                 # a launch (device functions are called from kernels)
            seen.setdefault(id(self), set()).add(json.dumps([_arg_type(a) for a in args]))
        return original(self, *args)

    sim.FakeCUDAKernel.__call__ = call
    with contextlib.redirect_stdout(io.StringIO()):
        status = cases.main(["cases.py"])
    table = _kernel_table()
    out = []
    for kid, sigs in seen.items():
        if kid in table:                     # not numba's own helper kernels
            module, name, dt, tile = table[kid]
            out += [{"module": module, "name": name, "dtype": dt, "tile": tile, "args": json.loads(s)}
                    for s in sorted(sigs)]
    Path(path).write_text(json.dumps(out, indent=1))
    print(f"{len(out)} signatures of {len({(r['module'], r['name']) for r in out})} kernels -> {path}"
          + ("" if status == 0 else " (some cases failed)"))
    return status


def _numba_type(desc):
    from numba import from_dtype, types

    if desc[0] == "array":
        return types.Array(from_dtype(np.dtype(desc[1])), desc[2], desc[3])
    return types.boolean if desc[1] == "bool" else from_dtype(np.dtype(desc[1]))


def compile_all(path: str, cc=(9, 0)) -> int:
    from types import SimpleNamespace

    from numba import cuda
    from numba.cuda import dispatcher

    from rnndsl.kernels.cuda import attention, cells, gemm, geometry, ops, optim

    # device functions called by a kernel are compiled for "the current device"; without a GPU
    # (and its driver) say which one that is
    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)

    mods = {"attention": attention, "cells": cells, "ops": ops, "optim": optim}
    g = geometry.geometry()
    failed = 0
    for rec in json.loads(Path(path).read_text()):
        dt = np.dtype(rec["dtype"])
        if rec["module"] == "gemm":
            k = gemm.make(dt, g.gemm_big if rec["tile"] == "big" else g.gemm_small)
        else:
            k = getattr(mods[rec["module"]].build(dt), rec["name"])
        sig = tuple(_numba_type(a) for a in rec["args"])
        label = f"{rec['module']}.{rec['name']}[{rec['dtype']}{', ' + rec['tile'] if rec['tile'] else ''}]"
        try:
            ptx, _ = cuda.compile_ptx(k.py_func, sig, cc=cc)
            f64 = ptx.count(".f64") if dt == np.float32 else 0
            print(f"ok   {label} ({len(ptx)} chars of PTX{f', {f64} float64 ops' if f64 else ''})")
        except Exception as e:  # noqa: BLE001 - report every kernel
            failed += 1
            print(f"FAIL {label} {sig}: {type(e).__name__}: {str(e)[:2000]}")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("record", "compile"):
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "record":
        sys.exit(record(sys.argv[2]))
    cc = tuple(int(p) for p in sys.argv[3].split(".")) if len(sys.argv) > 3 else (9, 0)
    sys.exit(compile_all(sys.argv[2], cc))
