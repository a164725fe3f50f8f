"""A kernel's compiled code called through one fixed signature, f(buf, b0, b1), its other
arguments stored in `buf` in numba's native layout.

The parallel driver (parallel.split_rows) is a prange: numba compiles a parallel function
per argument types, about a second each, and every kernel signature that ran split paid
it once more. Called through a trampoline of fixed signature, the driver is compiled once
(and cached); a trampoline per kernel signature is a few LLVM instructions, built here
directly (milliseconds, no numba pipeline):

    pack_args(args, buf)          store args at buf (compiled per argument types: tiny)
    tramp(buf, b0, b1)            kernel(*load(buf), b0, b1)

Both sides use the same layout: the arguments' data types (numba's data model) in an
LLVM struct of natural alignment. An array goes in with neither meminfo nor parent (those
that unboxing made for pack_args are released when it returns): the caller holds the
array for the whole call, and numba's reference counting ignores a null meminfo. Arrays, integers,
floats and booleans are packed; a kernel with any other argument type (Packer.build
returns None) keeps the per-signature driver.
"""

from __future__ import annotations

import ctypes
import itertools
import threading

from llvmlite import ir
from numba import njit, types
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import cpu_target
from numba.extending import intrinsic

_I32, _I64 = ir.IntType(32), ir.IntType(64)
_ints = itertools.count()


def _packed(t) -> bool:
    """Whether arguments of this numba type are packed (a literal bool or int, a kernel's
    per-value argument, is stored as its plain type)."""
    if isinstance(t, types.Array):
        return not isinstance(t.dtype, (types.Record, types.NestedArray))
    return isinstance(t, (types.Boolean, types.Integer, types.Float))


class Packer:
    """The trampoline of one kernel signature and the buffers its arguments are packed into."""

    def __init__(self, size: int, address: int, library):
        self.size = size
        self.address = address
        self.library = library                      # keeps the trampoline's code alive
        self.local = threading.local()              # each thread's argument buffer
        self.store = None                           # pack_args's entry point for these types (parallel.py)

    @classmethod
    def build(cls, sig: tuple, kernel_address: int) -> "Packer | None":
        """For a kernel compiled for (*sig, int64, int64) at kernel_address; None when an
        argument type is not one packed here."""
        if not all(_packed(t) for t in sig):
            return None
        ctx = cpu_target.target_context
        layout = ir.LiteralStructType([ctx.get_data_type(t) for t in sig])
        size = layout.get_abi_size(ctx.codegen().target_data)
        address, library = _trampoline(ctx, tuple(sig), kernel_address)
        return cls(size, address, library)

    def pack(self, args: tuple, store, buf=None) -> int:
        """The address of the arguments stored as the trampoline loads them, in `buf` (from
        new_buffer) or else a buffer of this thread's (keep args alive while the call runs;
        the next pack on this thread writes the same buffer). store: pack_args's compiled
        code for these arguments."""
        if buf is None:
            buf = getattr(self.local, "buf", None)
            if buf is None:
                buf = self.local.buf = self.new_buffer()
        address = ctypes.addressof(buf)
        store(args, address)
        return address

    def new_buffer(self):
        """A buffer of its own for one call's arguments (for calls packed before any runs)."""
        return ctypes.create_string_buffer(max(self.size, 8))


@intrinsic
def _store(typingctx, args, address):
    """Store the tuple `args` at `address` as numba lays its values out in memory (the
    struct the trampoline loads)."""
    if not isinstance(args, types.BaseTuple) or not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, sig, llargs):
        tup, addr = llargs
        layout = ir.LiteralStructType([context.get_data_type(t) for t in args.types])
        ptr = builder.inttoptr(addr, layout.as_pointer())
        for k, t in enumerate(args.types):
            value = context.data_model_manager[t].as_data(builder, builder.extract_value(tup, k))
            if isinstance(t, types.Array):
                # no meminfo, no parent: the ones unboxing made for this call die with it,
                # and numba's reference counting ignores a null meminfo
                for field in (0, 1):
                    value = builder.insert_value(value, ir.Constant(value.type.elements[field], None), field)
            builder.store(value, builder.gep(ptr, [ir.Constant(_I32, 0), ir.Constant(_I32, k)]))
        return context.get_dummy_value()

    return types.none(args, address), codegen


@njit(nogil=True, cache=True)
def pack_args(args, address):
    """args stored at address (the buffer Packer.pack hands out); compiled per argument
    types, a few instructions: its entry point unboxes the arrays in C, where reading an
    array's data pointer from Python took a microsecond an array."""
    _store(args, address)


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
