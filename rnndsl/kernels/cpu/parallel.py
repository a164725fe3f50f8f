"""Batch-parallel execution of the recurrent kernels on the machine's cores.

Rows of a batch never interact inside a recurrent layer, so the time loop
splits cleanly by batch: each core runs every step for its own rows, with
no synchronisation per step (a threaded BLAS would synchronise on every
per-step product, and at these sizes that costs more than it saves).

Every kernel (built-in and generated) runs its parts through one compiled driver
(``split_rows``, a prange over row ranges) in numba's thread pool (``run_rows``), far
cheaper to start than handing each part to a Python thread. The driver
calls the kernel's compiled code by its address (``compiled``, ``call_compiled``) instead of
calling the kernel by name: numba copies a callee's code into its caller and
optimises and generates it again, so a driver per kernel cost as much compile time as
the kernel (bench/README.md, "Compile time"). It reaches the kernel through a trampoline
of fixed signature that reads the arguments from a buffer (packed_call.py), so the driver
itself is compiled once, not once per kernel signature.
The large products (``matmul``) split in the same pool, so no second set of
threads competes for the cores. Small problems stay on the calling thread.

numba picks its threading layer (tbb, omp or workqueue) by what is installed;
with GNU OpenMP a process that forks after a parallel region must not use
rnndsl in the child (start workers with the "spawn" method), and workqueue
cannot run parallel regions from two threads at once.

With GNU OpenMP an idle worker spins before it sleeps: 300,000 turns by default, long
enough to take a core from a neighbouring process between every two of rnndsl's parallel
regions. The pool is started here with GOMP_SPINCOUNT=SPIN_COUNT unless the user set it
(10,000 turns: still awake between the regions of one step, asleep between steps; the
slowdowns beside busy processes: bench/README.md "A shared machine"). The variable is read when
libgomp loads, and is removed again afterwards so that a library loaded later (a
PyTorch in the same process) keeps its own default.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange, types
from numba._dispatcher import compute_fingerprint
from numba.core import cgutils
from numba.core.errors import ForceLiteralArg
from numba.core.typing.typeof import Purpose
from numba.extending import intrinsic

from . import buffers, paths
from .packed import NB, packed, rows_matmul, tn_accumulate
from .packed_call import Packer, pack_args

SPIN_COUNT = "10000"


def _start_pool() -> None:
    """Start numba's thread pool now, with GNU OpenMP's spin count set as above."""
    import numba

    mine = "GOMP_SPINCOUNT" not in os.environ
    if mine:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        numba.get_num_threads()              # loads the threading layer (and libgomp with it)
    finally:
        if mine:
            del os.environ["GOMP_SPINCOUNT"]


_start_pool()

def _ranks_here() -> int:
    """How many MPI ranks share this machine, from what the launcher sets (MPICH's Hydra,
    Open MPI, Slurm); 1 outside a launcher."""
    for var in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"):
        try:
            return max(1, int(os.environ[var]))
        except (KeyError, ValueError):
            continue
    return 1


# the threads of one process: the cores, shared among the MPI ranks on this machine (no oversubscription)
WORKERS = max(1, int(os.environ.get("RNNDSL_NUM_THREADS", (os.cpu_count() or 1) // _ranks_here())))
# multiply-adds of a whole call below which splitting does not pay
MIN_SPLIT_WORK = int(os.environ.get("RNNDSL_MIN_SPLIT_WORK", 2_000_000))
MIN_ROWS = 4


# the same for a lone product (matmul), which starts nothing else: below it a split gains
# too little to be worth it (bench/README.md)
MIN_SPLIT_MATMUL = 256_000


def chunks(rows: int, work: int, min_work: int | None = None) -> list[tuple[int, int]]:
    """Split rows 0..rows into contiguous ranges, one per worker, when the work is worth it
    (min_work multiply-adds; MIN_SPLIT_WORK by default); one range on the plain route."""
    if work < (MIN_SPLIT_WORK if min_work is None else min_work) or paths.plain():
        return [(0, rows)]
    n = max(min(WORKERS, rows // MIN_ROWS), 1)
    edges = [rows * k // n for k in range(n + 1)]
    return [(edges[k], edges[k + 1]) for k in range(n)]


def run_rows(kernel, args: tuple, rows: int, work: int, parts: int | None = None, defer: bool = False,
             strided: tuple = ()) -> None:
    """kernel(*args, b0, b1) over rows 0..rows: on this thread when one part is enough, else
    the parts at once in numba's thread pool (split_rows). `parts` (default: chunks' choice)
    is for a caller that sized per-part arrays already (a deferred call then runs in exactly
    that many parts: see holding). defer: inside together(), the call may wait for the
    block's end (its caller reads none of its outputs before then).
    strided: the positions of arrays typed any-layout (see compiled)."""
    n = len(chunks(rows, work)) if parts is None else parts
    if not hasattr(kernel, "overloads"):       # NUMBA_DISABLE_JIT: a Python function, run part by part
        for p in range(n):
            kernel(*args, rows * p // n, rows * (p + 1) // n)
        return
    entry, address = compiled(kernel, args, strided=strided)
    run_compiled(entry, address, args, rows, work, n, parts, defer)


def run_compiled(entry, address: int, args: tuple, rows: int, work: int, n: int, parts: int | None = None,
                 defer: bool = False) -> None:
    """run_rows once the kernel's code is found: (entry, address) from compiled() for
    arguments of these types, in n parts (chunks' choice, or `parts`), for a caller that
    kept them from an earlier call of the same layer (an inference call made ready)."""
    pending = getattr(_pending, "calls", None) if defer else None
    if pending is not None and _packer(address, args) is not None:
        pending.append((entry, address, args, rows, work, parts))
        return
    _run_parts(entry, address, args, rows, n)


def _run_parts(entry, address: int, args: tuple, rows: int, n: int) -> None:
    """The kernel compiled at address (entry: its Python-callable code) over rows 0..rows in
    n parts: on this thread for one, else through split_rows."""
    if n == 1:
        entry(*args, 0, rows)
        return
    packer = _packer(address, args)
    if packer is None:                          # an argument type packed_call does not store
        split_typed(address, args, rows, n)
    else:
        _split_entry()(packer.address, packer.pack(args, packer.store), rows, n)


def _packer(address: int, args: tuple):
    """The Packer of the kernel compiled at address (None: an argument type it does not store)."""
    packer = _packers.get(address, False)
    if packer is False:
        packer = _packers[address] = Packer.build(_signatures[address], address)
    if packer is not None and packer.store is None:    # pack_args for these types: one per kernel signature
        packer.store = compiled(pack_args, (args, 0), rows=False)[0]
    return packer


# the calls together() holds back on this thread (None: not inside together())
_pending = threading.local()


def holding() -> bool:
    """Whether deferred calls wait for a together() block's end on this thread."""
    return getattr(_pending, "calls", None) is not None


@contextmanager
def together():
    """Run the deferred kernel calls (run_rows(..., defer=True)) of the block at its end, at
    once: each on its own share of the workers with all its rows, instead of one after the
    other, each split across all of them. For calls none of which reads what another writes
    (a bidirectional layer's two halves): one fork and join instead of one per call, and each
    worker packs and streams one call's weights. Calls made without defer run at once."""
    if getattr(_pending, "calls", None) is not None or paths.plain():   # nested: the outer block runs them
        yield
        return
    calls = _pending.calls = []
    try:
        yield
    finally:
        _pending.calls = None
    _run_together(calls)


@contextmanager
def in_order():
    """Inside together(): the block's calls run as they are made (calls that read what the one
    before wrote: a layer run chunk after chunk)."""
    held = getattr(_pending, "calls", None)
    _pending.calls = None
    try:
        yield
    finally:
        _pending.calls = held


def _run_together(calls: list) -> None:
    """The held-back calls: (entry, address, args, rows, work, parts) each, parts None (the
    runner's choice) or the number of parts the caller sized per-part arrays for."""
    if len(calls) < 2 or WORKERS < 2 or sum(c[4] for c in calls) < MIN_SPLIT_WORK:
        for entry, address, args, rows, work, parts in calls:    # one after the other, as run_rows would
            _run_parts(entry, address, args, rows, len(chunks(rows, work)) if parts is None else parts)
        return
    share = max(1, WORKERS // len(calls))
    tasks, keep = [], []
    for _, address, args, rows, _, parts in calls:
        packer = _packer(address, args)
        buf = packer.new_buffer()
        keep.append(buf)
        address = packer.pack(args, packer.store, buf)
        n = max(1, min(share, rows // MIN_ROWS)) if parts is None else parts
        tasks += [(packer.address, address, rows * k // n, rows * (k + 1) // n) for k in range(n)]
    table = np.array(tasks, np.int64).T.copy()
    _calls_entry()(table[0], table[1], table[2], table[3])


@intrinsic
def call_compiled(typingctx, address, args, b0, b1):
    """Call the numba function compiled at `address` (compiled) with (*args, b0, b1),
    b0 and b1 as int64: the call a direct call would make, with the callee's code left where
    it is (it is not linked into the caller, so not optimised and generated a second time)."""
    if not isinstance(address, types.Integer) or not isinstance(args, types.BaseTuple):
        return None
    argtys = tuple(args.types) + (types.int64, types.int64)

    def codegen(context, builder, sig, llargs):
        addr, tup, lo, hi = llargs
        values = [builder.extract_value(tup, i) for i in range(len(args.types))]
        values += [context.cast(builder, lo, b0, types.int64), context.cast(builder, hi, b1, types.int64)]
        fnty = context.call_conv.get_function_type(types.none, argtys)
        fn = builder.inttoptr(addr, fnty.as_pointer())
        status, _ = context.call_conv.call_function(builder, fn, types.none, argtys, values)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()

    return types.none(address, args, b0, b1), codegen


@njit(parallel=True, cache=True, nogil=True)
def split_rows(trampoline, buf, rows, parts):
    """A kernel over `parts` contiguous row ranges at once, through its packed_call
    trampoline(buf, b0, b1): compiled once for every kernel."""
    for p in prange(parts):
        call_compiled(trampoline, (buf,), rows * p // parts, rows * (p + 1) // parts)


_entry: list = []


def _split_entry():
    """split_rows's compiled code for its one signature, called without numba's dispatch
    (which types the four integers on every call: a few microseconds a split)."""
    if not _entry:
        sig = (types.int64,) * 4
        split_rows.compile(sig)
        _entry.append(split_rows.overloads[sig].entry_point)
    return _entry[0]


@njit(parallel=True, cache=True, nogil=True)
def split_calls(trampolines, bufs, lo, hi):
    """Several kernels at once, task k being trampolines[k](bufs[k], lo[k], hi[k]) (see
    together()): compiled once for every kernel, as split_rows."""
    for k in prange(trampolines.shape[0]):
        call_compiled(trampolines[k], (bufs[k],), lo[k], hi[k])


_calls: list = []


def _calls_entry():
    """split_calls's compiled code for its one signature (four int64 vectors)."""
    if not _calls:
        sig = (types.int64[::1],) * 4
        split_calls.compile(sig)
        _calls.append(split_calls.overloads[sig].entry_point)
    return _calls[0]


@njit(parallel=True, cache=True, nogil=True)
def split_typed(address, args, rows, parts):
    """The kernel compiled at `address` over `parts` row ranges, its arguments as they are
    (compiled per argument types: for what packed_call does not store)."""
    for p in prange(parts):
        call_compiled(address, args, rows * p // parts, rows * (p + 1) // parts)


@njit(inline="always")
def part_of(b0, rows, parts):
    """The part whose rows begin at b0, as split_rows cuts rows 0..rows into `parts`, for a kernel
    with per-part outputs: b0 = floor(rows p / parts), so p = ceil(b0 parts / rows) (parts <= rows)."""
    return (b0 * parts + rows - 1) // rows if rows > 0 else 0


_compiled: dict = {}
_literal: dict = {}         # kernel -> the positions of the arguments it compiles per value (numba.literally)
_signatures: dict = {}      # address -> the argument types (without b0, b1) it was compiled for
_packers: dict = {}         # address -> its Packer (None: split_typed)


def compiled(kernel, args: tuple, rows: bool = True, strided: tuple = ()) -> tuple:
    """(entry, address) of kernel's code compiled for (*args, int64, int64) (rows=False: for
    args alone), compiled (or read from numba's cache) the first time: a Python callable of
    that code alone, and its address for split_rows, which passes exactly these types (both
    come from numba's typeof of the same values). The arrays at the positions in `strided`
    are typed as any-layout arrays, so that one compiled code serves contiguous and strided
    inputs alike. An argument the kernel asks to see as a constant (numba.literally) is
    compiled per value, as a direct call would; the entry also spares such a kernel numba's
    dispatch, which retries the compile on every call before it finds that code."""
    consts = _literal.get(kernel, ())
    try:
        key = (kernel, tuple(map(compute_fingerprint, args)), tuple([args[i] for i in consts]) if consts else (),
               rows, strided)
    except (TypeError, ValueError):        # a value numba has no fingerprint for: type it each call
        key = None
    found = _compiled.get(key)
    if found is not None:
        return found
    sig = [numba.typeof(a, Purpose.argument) for a in args] + ([types.int64, types.int64] if rows else [])
    for i in strided:
        sig[i] = sig[i].copy(layout="A")
    for i in consts:
        sig[i] = types.literal(args[i])
    try:
        kernel.compile(tuple(sig))
    except ForceLiteralArg as ask:
        _literal[kernel] = tuple(sorted(ask.requested_args))
        return compiled(kernel, args, rows, strided)
    done = kernel.overloads[tuple(sig)]
    address = done.library.get_pointer_to_function(done.fndesc.llvm_func_name)
    if not address:
        raise RuntimeError(f"numba gave no address for {kernel.__name__}{tuple(sig)}")
    found = (done.entry_point, address)
    if rows:
        _signatures[address] = tuple(sig[:-2])
    if key is not None:
        _compiled[key] = found
    return found


def call_strided(kernel, args: tuple, strided: tuple):
    """kernel(*args) through the code compiled with the arrays at `strided` typed any-layout
    (see compiled): a caller passing contiguous and strided arrays there compiles it once."""
    if not hasattr(kernel, "overloads"):       # NUMBA_DISABLE_JIT: a Python function
        return kernel(*args)
    return compiled(kernel, args, rows=False, strided=strided)[0](*args)


@njit(parallel=True, cache=True, nogil=True)
def sum_parts(a, parts):
    """a[0] += a[1] + ... + a[parts-1] (per-part partial sums, a (parts, R, C) array), its rows
    split the same way (a NumPy sum over the parts runs on one core)."""
    R, C = a.shape[1], a.shape[2]
    for p in prange(parts):
        for r in range(R * p // parts, R * (p + 1) // parts):
            for q in range(1, parts):
                for j in range(C):
                    a[0, r, j] += a[q, r, j]


@njit(parallel=True, cache=True, nogil=True)
def _dot_rows(a, b, out, parts):
    """out = a @ b, a's rows in `parts` ranges at once (numba's thread pool)."""
    M = a.shape[0]
    for p in prange(parts):
        r0, r1 = M * p // parts, M * (p + 1) // parts
        np.dot(a[r0:r1], b, out[r0:r1])


# Largest output (floats) of m^T b taken by the TN register tile (packed.py) rather than BLAS:
# each core adds its share of the rows, TN_ROWS at a time (that block of b stays in L1), to
# its own partial output, which must stay in L2: faster than OpenBLAS up to this size, slower
# on outputs far past L2 (bench/README.md, "Measurements behind the code").
TN_MAX_OUT = 131_072
TN_ROWS = 128
# Largest shared dimension (a step's rows times the steps) of an m^T b past TN_MAX_OUT split
# by output rows (_transposed_rows) rather than by the shared dimension: the split by the
# shared dimension adds one partial output a worker (16 MB each at wide's dU); by output
# rows each worker reads all of b, which is small while the shared dimension is short.
TN_ROWS_MAX_K = 4096


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _transposed(m, b, out, parts, tiled):
    """out = m^T @ b (a weight gradient: m and b have one row per step and sample), the
    shared dimension in `parts` ranges at once, their partial products summed. Each part by
    BLAS, or, tiled (float32, b's columns a multiple of NB), by tn_accumulate TN_ROWS rows at
    a time."""
    K = m.shape[0]
    shape = (parts, out.shape[0], out.shape[1])
    partial = np.zeros(shape, out.dtype) if tiled else np.empty(shape, out.dtype)
    none_m, none_b = m[:0], b[:0]
    for p in prange(parts):
        k0, k1 = K * p // parts, K * (p + 1) // parts
        if not tiled:
            np.dot(m[k0:k1].T, b[k0:k1], partial[p])
            continue
        for c0 in range(k0, k1, TN_ROWS):
            c1 = min(c0 + TN_ROWS, k1)
            tn_accumulate(m[c0:c1], b[c0:c1], none_m, none_b, partial[p])
    out[...] = partial[0]
    for p in range(1, parts):
        out += partial[p]


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _transposed_rows(m, b, out, parts):
    """out = m^T @ b, out's rows (m's columns) in `parts` ranges at once, each by BLAS on a
    contiguous copy of its columns of m: for a short shared dimension and a large output
    (no partial outputs to add up, each worker writing its own rows of out once)."""
    N = m.shape[1]
    for p in prange(parts):
        r0, r1 = N * p // parts, N * (p + 1) // parts
        np.dot(np.ascontiguousarray(m[:, r0:r1].T), b, out[r0:r1])


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _packed_rows(a, b, out, parts):
    """out = a @ b (float32), a's rows in `parts` ranges at once, each worker packing b for
    the packed product (packed.py), faster than OpenBLAS on dZ W^T-like shapes."""
    M = a.shape[0]
    for p in prange(parts):
        r0, r1 = M * p // parts, M * (p + 1) // parts
        rows_matmul(a[r0:r1], b, packed(b), out[r0:r1])


def matmul(a, b, out=None):
    """a @ b on the cores (BLAS itself runs one thread): a's rows split, or, when a is the
    transpose of a C array (X^T dZ), the shared dimension split and the parts summed; both
    in numba's thread pool, the same threads the kernels use. float32 with a C array of
    >= 32 rows on the left, >= 32 output columns and MIN_SPLIT_MATMUL multiply-adds goes
    through the packed product (a smaller one, a few microseconds in BLAS, is not worth
    compiling it for on a small model's first run), a small X^T dZ through the TN tile
    (TN_MAX_OUT)."""
    rows = a.shape[0]
    dtype = np.result_type(a, b)
    if out is None:
        out = buffers.empty((rows, b.shape[1]), dtype)
    work = rows * a.shape[1] * b.shape[1]
    parts = len(chunks(rows if a.flags.c_contiguous else a.shape[1], work, MIN_SPLIT_MATMUL))
    if not b.flags.c_contiguous and b.size <= 65536:
        b = np.ascontiguousarray(b)         # a small transposed weight (dZ W^T): BLAS is faster on it
    same = a.dtype == dtype and b.dtype == dtype and out.flags.c_contiguous
    if paths.plain():
        np.matmul(a, b, out=out)
        return out
    f32 = dtype == np.float32 and same
    if f32 and a.flags.c_contiguous and b.shape[1] >= NB and a.shape[0] >= 32 and work >= MIN_SPLIT_MATMUL:
        _packed_rows(a, np.ascontiguousarray(b), out, parts)
    elif parts > 1 and same and a.flags.c_contiguous:
        _dot_rows(a, b, out, parts)
    elif parts > 1 and same and a.T.flags.c_contiguous and b.flags.c_contiguous and out.size > TN_MAX_OUT and \
            a.shape[1] <= TN_ROWS_MAX_K:
        _transposed_rows(a.T, b, out, min(parts, rows))
    elif parts > 1 and same and a.T.flags.c_contiguous and b.flags.c_contiguous:
        _transposed(a.T, b, out, parts, f32 and b.shape[1] % NB == 0 and out.size <= TN_MAX_OUT)
    else:                       # small, or strided operands (no caller of rnndsl's passes them)
        np.matmul(a, b, out=out)
    return out


def column_sums(a):
    """a.sum(axis=0) of a 2-D array, as ones @ a: one BLAS pass over the rows (a bias
    gradient: faster than NumPy's axis-0 reduction; bench/README.md)."""
    if a.ndim != 2 or not a.flags.c_contiguous:
        return a.sum(axis=0)
    return np.ones(a.shape[0], a.dtype) @ a
