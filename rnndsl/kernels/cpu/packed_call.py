"""A kernel's compiled code called through one fixed signature, f(buf, b0, b1), its other
arguments stored in `buf` in numba's native layout.

The parallel driver (parallel.split_rows) is a prange: numba compiles a parallel function
per argument types, about a second each, and every kernel signature that ran split paid
it once more. Called through a trampoline of fixed signature, the driver is compiled once
(and cached); a trampoline per kernel signature is a few LLVM instructions, built here
directly (milliseconds, no numba pipeline):

    tramp(buf, b0, b1) = kernel(*load(buf), b0, b1)

load reads the arguments back as numba stores them in memory (its data model's data
types in an LLVM struct of natural alignment, the layout `Packer` writes from Python).
An array goes in as its data pointer, sizes and strides with neither a meminfo nor a
parent: the caller holds the array for the whole call, and numba's reference counting
ignores a null meminfo. Arrays, integers, floats and booleans are packed; a kernel with
any other argument type (Packer.build returns None) keeps the per-signature driver.
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
from llvmlite import ir
from numba import types
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import cpu_target

_I32, _I64 = ir.IntType(32), ir.IntType(64)
_ints = itertools.count()


_INTS = {8: "b", 16: "h", 32: "i", 64: "q"}


def _code(t) -> str | None:
    """The struct module's code for a scalar numba type as numba stores it, or None. (A
    literal bool or int, a kernel's per-value argument, is stored as its plain type.)"""
    if isinstance(t, types.Boolean):
        return "B"                                  # i8 in memory
    if isinstance(t, types.Integer):
        return _INTS[t.bitwidth] if t.signed else _INTS[t.bitwidth].upper()
    if isinstance(t, types.Float):
        return {32: "f", 64: "d"}[t.bitwidth]
    return None


class Packer:
    """The trampoline of one kernel signature and the packing of its arguments."""

    def __init__(self, fmt: str, size: int, arrays: tuple, address: int, library):
        self.fmt, self.size, self.arrays = struct.Struct(fmt), size, arrays
        self.address = address
        self.library = library                      # keeps the trampoline's code alive

    @classmethod
    def build(cls, sig: tuple, kernel_address: int) -> "Packer | None":
        """For a kernel compiled for (*sig, int64, int64) at kernel_address; None when an
        argument type is not one packed here."""
        ctx = cpu_target.target_context
        td = ctx.codegen().target_data
        fmt, offset, arrays = ["<"], 0, []
        for k, t in enumerate(sig):
            data = ctx.get_data_type(t)
            align = data.get_abi_alignment(td)
            pad = -offset % align
            fmt.append("x" * pad)
            offset += pad
            if isinstance(t, types.Array) and not isinstance(t.dtype, (types.Record, types.NestedArray)):
                fmt.append("qqqqQ" + "q" * (2 * t.ndim))       # meminfo, parent, nitems, itemsize, data, shape, strides
                arrays.append(k)
            else:
                code = _code(t)
                if code is None:
                    return None
                fmt.append(code)
            offset += data.get_abi_size(td)
        if struct.calcsize("".join(fmt)) != offset:          # pragma: no cover - a layout numba changed
            return None
        address, library = _trampoline(ctx, tuple(sig), kernel_address)
        return cls("".join(fmt), offset, tuple(arrays), address, library)

    def pack(self, args: tuple) -> np.ndarray:
        """The arguments as the trampoline loads them (keep args alive while it runs)."""
        values = []
        for k, a in enumerate(args):
            if k in self.arrays:
                values += (0, 0, a.size, a.itemsize, a.__array_interface__["data"][0], *a.shape, *a.strides)
            else:
                values.append(a)
        buf = np.empty(max(self.size, 8), np.uint8)
        self.fmt.pack_into(buf, 0, *values)
        return buf


def _trampoline(ctx, sig: tuple, kernel_address: int):
    """Build tramp(buf, b0, b1) for a kernel compiled for (*sig, int64, int64) at the address."""
    cc = ctx.call_conv
    name = f"rnndsl_packed_call_{next(_ints)}"
    with global_compiler_lock:                      # numba's codegen is not thread-safe
        library = ctx.codegen().create_library(name)
        module = library.create_ir_module(name)
        fn = ir.Function(module, cc.get_function_type(types.none, (types.int64,) * 3), name)
        builder = ir.IRBuilder(fn.append_basic_block())
        buf, b0, b1 = cc.decode_arguments(builder, (types.int64,) * 3, fn)
        layout = ir.LiteralStructType([ctx.get_data_type(t) for t in sig])
        ptr = builder.inttoptr(buf, layout.as_pointer())
        values = []
        for k, t in enumerate(sig):
            stored = builder.load(builder.gep(ptr, [ir.Constant(_I32, 0), ir.Constant(_I32, k)]))
            values.append(ctx.data_model_manager[t].from_data(builder, stored))
        kargs = sig + (types.int64, types.int64)
        kernel = builder.inttoptr(ir.Constant(_I64, kernel_address),
                                  cc.get_function_type(types.none, kargs).as_pointer())
        packed = ctx.get_arg_packer(kargs).as_arguments(builder, values + [b0, b1])
        # the caller's return slot and exception record go on to the kernel: its status
        # (an exception included) is the trampoline's
        builder.ret(builder.call(kernel, [fn.args[0], fn.args[1]] + list(packed)))
        library.add_ir_module(module)
        library.finalize()
        return library.get_pointer_to_function(name), library
