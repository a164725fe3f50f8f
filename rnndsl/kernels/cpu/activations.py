"""Activations, their derivatives, and the step plumbing shared by the CPU cells.

The activations, their codes (``activation`` / ``recurrent_activation``) and their
derivatives, written through the saved output ``y = f(x)`` so that the backward passes
never need the pre-activations, are the rows of rnndsl/elementwise.py; this module
compiles them: one scalar function per row and direction (``tanh_``, ``dtanh_``, ...),
and the dispatch on the code (``act_``, ``dact_``).

NaN in gives NaN out, and +-inf gives what float64 gives (tanh +-1, sigmoid 0 or 1
exactly), in every dtype: a model with a broken weight must not predict plausible
numbers (tests/runtime/test_engine_nonfinite.py).

Precision policy, chosen at compile time from the scalar type (the rows whose ``numba``
template is None, implemented here):

* float64: exact ``tanh`` and ``1 / (1 + exp(-x))``, so kernels match a NumPy
  reference to ~1e-15.
* float32: ``tanh(x) ~= x P(x^2) / Q(x^2)`` on ``|x| < 9``, exactly +-1 outside
  (tanh(9) rounds to 1 in float32), ``P`` and ``Q`` of degree 4, a minimax fit
  made for this project (Lawson-reweighted linear least squares on [0, 9],
  coefficients rounded to float32).  Max abs error ~3.7e-7 over the real line
  when evaluated in float32.  ``sigmoid(x) = 1/2 + tanh(x/2)/2``.  Being
  branch-free and libm-free, loops over it vectorise (AVX-512), where a scalar
  libm ``tanhf`` does not (bench/README.md).  All float32 constants
  are float32 so nothing is promoted to float64 inside those loops.

Dispatch on the activation code happens inside the innermost loop
(``act_(x, code)``); the code is loop-invariant, so LLVM unswitches it and
vectorises each specialised copy.  That only works on unit-stride 1-D rows,
which is why the helpers below take rows (``a[b, lo:hi]`` of a C array stays
C-contiguous) and never 2-D column slices.

Also here (shared by simplernn.py, lstm.py, gru.py): the time-index, mask,
recurrent-dropout and output/state-commit helpers used inside the kernels, and
the argument normalisation used by the Python wrappers.

Kernel conventions for optional arrays: "no mask" is an empty ``(0, 0)``
uint8 array and "no recurrent dropout" an empty ``(0, 0)`` float array, so the
kernels keep one signature per dtype (one cache entry) and test
``arr.shape[0] == 0`` instead of taking extra flags.

Caching: numba's on-disk cache checks only a kernel's own source file, so the
kernels' compiled code lives in a folder named by a hash of every kernels/cpu
source and rnndsl/elementwise.py (kernels/cpu/__init__.py, caches.sources_digest):
an edited helper or table row compiles afresh.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from ...elementwise import CODES, KERNEL_OPS, PY_CONSTANTS, dispatch_rows
from . import buffers
from .packed import rows_matmul

ACTIVATIONS = dict(CODES)
TANH, SIGMOID, RELU, LINEAR, HARD_SIGMOID = (CODES[n] for n in ("tanh", "sigmoid", "relu", "linear", "hard_sigmoid"))

# Options every compiled kernel uses.  error_model="numpy" removes the
# division-by-zero checks that otherwise block vectorisation.
KERNEL_OPTIONS = dict(cache=True, error_model="numpy", nogil=True)
_OVERLOAD_JIT = dict(error_model="numpy")


def activation_code(activation) -> int:
    """Map an activation name (or an already numeric code) to its code."""
    if type(activation) is str:
        code = ACTIVATIONS.get(activation)          # a lowercase name, as the layers pass it
        if code is not None:
            return code
    if isinstance(activation, str):
        key = activation.lower()
        if key not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}"
            )
        return ACTIVATIONS[key]
    if isinstance(activation, (int, np.integer)) and not isinstance(activation, bool):
        if int(activation) in ACTIVATIONS.values():
            return int(activation)
    raise ValueError(f"activation must be a name or a code {sorted(ACTIVATIONS.values())}, got {activation!r}")


# ---------------------------------------------------------------------------
# Scalar functions, one per row and direction: `name_(x)` and `dname_(y)`. Their Python
# bodies are the row's float64 definitions (they run under NUMBA_DISABLE_JIT); compiled
# code gets the per-dtype overloads, made from the row's templates with the constants
# typed (so float32 code never meets a float64 constant), or written below.
# ---------------------------------------------------------------------------

_TANH_CLAMP = 9.0
_TANH_P = (0.9999998807907104, 0.13373197615146637, 0.0034865811467170715,
           2.0471818061196245e-05, 1.318420572715695e-08)
_TANH_Q = (1.0, 0.4670649468898773, 0.025841975584626198,
           0.00032713840482756495, 7.702656148467213e-07)

_PY_SCOPE = {"math": math, "np": np, **PY_CONSTANTS}        # the rows' Python, constants as floats


def _define(name: str, arg: str, template: str):
    """`def name(arg): return template`, a plain Python function (numba overloads it)."""
    scope = dict(_PY_SCOPE)
    exec(f"def {name}({arg}):\n    return {template.format(x=arg, y=arg)}\n", scope)  # noqa: S102 - the table's text
    return scope[name]


def _typed(stub, arg: str, template: str):
    """Overload ``stub`` per float type by ``template`` with zero, one, half, sixth typed."""
    make = eval(f"lambda zero, one, half, sixth: lambda {arg}: {template.format(x=arg, y=arg)}",  # noqa: S307
                {"math": math, "np": np})

    def typer(t):
        if not isinstance(t, types.Float):
            return None
        ty = as_dtype(t).type
        return make(ty(0.0), ty(1.0), ty(0.5), ty(1.0 / 6.0))

    # numba wants the typer's argument named as the stub's.
    overload(stub, jit_options=_OVERLOAD_JIT)(eval(f"lambda {arg}: typer({arg})", {"typer": typer}))  # noqa: S307


FORWARD: dict = {}       # row name -> name_ (rows with a code, but the identity)
DERIVATIVE: dict = {}    # row name -> dname_
for _op in KERNEL_OPS:
    _arg = "x" if _op.d_from == "x" else "y"
    DERIVATIVE[_op.name] = _define(f"d{_op.name}_", _arg, _op.d)
    _typed(DERIVATIVE[_op.name], _arg, _op.d)
    if not _op.identity:
        FORWARD[_op.name] = _define(f"{_op.name}_", "x", _op.py)
        if _op.numba is not None:
            _typed(FORWARD[_op.name], "x", _op.numba)
globals().update({f.__name__: f for f in (*FORWARD.values(), *DERIVATIVE.values())})


@overload(FORWARD["tanh"], jit_options=_OVERLOAD_JIT)
def _tanh_impl(x):
    if x == types.float32:
        clamp, one = np.float32(_TANH_CLAMP), np.float32(1.0)
        p0, p1, p2, p3, p4 = (np.float32(c) for c in _TANH_P)
        q0, q1, q2, q3, q4 = (np.float32(c) for c in _TANH_Q)

        def impl(x):
            s = x * x
            p = (((p4 * s + p3) * s + p2) * s + p1) * s + p0
            q = (((q4 * s + q3) * s + q2) * s + q1) * s + q0
            t = x * (p / q)
            # beyond the clamp (where t may be inf/inf) exactly +-1, so that sigmoid(-inf) is 0
            # as in float64; a NaN x fails both compares and keeps its NaN t. (These become
            # selects: the loops still vectorise. A clamp of x by min/max would swallow a NaN
            # wherever LLVM lowered it to minnum/maxnum.)
            t = one if x >= clamp else t
            return -one if x <= -clamp else t

        return impl
    if x == types.float64:
        return lambda x: np.tanh(x)
    return None


@overload(FORWARD["sigmoid"], jit_options=_OVERLOAD_JIT)
def _sigmoid_impl(x):
    if x == types.float32:
        half, tanh = np.float32(0.5), FORWARD["tanh"]
        return lambda x: half + half * tanh(half * x)
    if x == types.float64:
        # exp(-x) overflowing to inf gives exactly 0, as it should.
        return lambda x: 1.0 / (1.0 + np.exp(-x))
    return None


_IMPLEMENTED = {"tanh", "sigmoid"}
assert _IMPLEMENTED == {op.name for op in KERNEL_OPS if op.numba is None}, "a row without numba code"


def _dispatch(name: str, arg: str, call, doc: str):
    """``name(arg, code)``: an if-chain over the codes, the identity row last (the fall-through)."""
    branches, last = dispatch_rows()
    lines = [f"def {name}({arg}, code):", f'    """{doc}"""']
    for i, op in enumerate(branches):
        lines += [f"    {'elif' if i else 'if'} code == {op.code}:", f"        return {call(op)}"]
    lines.append(f"    return {call(last)}")
    scope = {f.__name__: f for f in (*FORWARD.values(), *DERIVATIVE.values())}
    exec("\n".join(lines) + "\n", scope)  # noqa: S102 - the table's text
    return njit(inline="always")(scope[name])


act_ = _dispatch("act_", "x", lambda op: "x" if op.identity else f"{op.name}_(x)", "f_code(x).")
dact_ = _dispatch("dact_", "y", lambda op: f"d{op.name}_(y)", "f_code'(x) expressed through y = f_code(x).")


# ---------------------------------------------------------------------------
# Row helpers: one batch row of one gate block at a time (unit stride).
# ---------------------------------------------------------------------------


@njit(inline="always")
def act_add_row(dst, a, b, code):
    """dst = f_code(a + b)."""
    for j in range(dst.shape[0]):
        dst[j] = act_(a[j] + b[j], code)


@njit(inline="always")
def add_row(dst, src):
    """dst += src (rows: unit stride, so the loop vectorises)."""
    for j in range(dst.shape[0]):
        dst[j] += src[j]


@njit(inline="always")
def act_row(dst, src, code):
    """dst = f_code(src); dst may be src."""
    for j in range(dst.shape[0]):
        dst[j] = act_(src[j], code)


@njit(inline="always")
def dact_row(dst, dy, y, code):
    """dst = dy * f_code'(x), from the saved y = f_code(x)."""
    for j in range(dst.shape[0]):
        dst[j] = dy[j] * dact_(y[j], code)


# ---------------------------------------------------------------------------
# Time order, masking, recurrent dropout.
# ---------------------------------------------------------------------------


@njit(inline="always")
def input_rows(xp, X, W, Wp, b_in, XP, t, b0, b1):
    """Rows b0..b1 of step t's input projection plus the input bias, in the worker's scratch
    XP (B, >= G) to index by row: x_t @ W + b_in.

    x_t @ W is either precomputed for all steps (xp[t]: one big product, the faster choice
    for wide inputs) or, when X is not empty, computed here by one small product (Wp: W
    packed), which keeps no (T, B, G) array. Either way the bias is added here, on rows
    in cache, rather than in a pass of its own over all steps."""
    G = b_in.shape[0]
    if X.shape[0] == 0:
        src = xp[t]
        for b in range(b0, b1):
            for j in range(G):
                XP[b, j] = src[b, j] + b_in[j]
    else:
        rows_matmul(X[t, b0:b1], W, Wp, XP[b0:b1])
        for b in range(b0, b1):
            add_row(XP[b, :G], b_in)
    return XP


@njit(inline="always")
def table_rows(table, ids, XP, t, b0, b1):
    """Rows b0..b1 of step t's input projection when the input is an embedding's rows:
    row ids[t, b] of table = E W + b_in (the embedding projected once; see
    runtime/cpu/recurrent.py), copied to the worker's scratch XP like input_rows'."""
    G = table.shape[1]
    for b in range(b0, b1):
        src = table[ids[t, b]]
        for j in range(G):
            XP[b, j] = src[j]
    return XP


@njit(inline="always")
def scratch_cols(n, P):
    """Width of a rows_matmul output for n columns against the packed P (see packed.py)."""
    return n if P.shape[0] == 0 else P.shape[0] * P.shape[2]


@njit(inline="always")
def out_index(out, s):
    """Row of out written at processing step s: out keeps every step, or only the last
    (one row, overwritten each step)."""
    return 0 if out.shape[0] == 1 else s


@njit(inline="always")
def step_time(s, T, backwards):
    """Input time consumed at processing step s (go_backwards reverses)."""
    return T - 1 - s if backwards else s


@njit(inline="always")
def is_real(mask, t, b):
    """False only at padded steps; an empty mask means every step is real."""
    return mask.shape[0] == 0 or mask[t, b] != 0


# Row copies are explicit loops: numba's generic slice assignment costs more
# than the copy itself at these row lengths.


@njit(inline="always")
def copy_row(dst, src):
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(inline="always")
def copy_rows(dst, src):
    """dst[:, :] = src[:, :] of two (rows, cols) arrays of one shape, as loops: NumPy's slice
    assignment brings its shape-mismatch message, and compiling that message's string
    formatting was a tenth of a first run's compile time."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@njit(inline="always")
def flush_row(row, tiny):
    """Values with |v| < tiny (about the smallest normal float) to zero.

    A gradient decaying backwards through a long sequence spends about a hundred
    steps in the subnormal range, where x86 arithmetic is far slower
    (bench/README.md). Flushing the carried state gradients each step keeps
    everything downstream normal; the values
    dropped are below 1.2e-35 (float32), far under any gradient that matters.
    """
    for j in range(row.shape[0]):
        v = row[j]
        row[j] = v if abs(v) >= tiny else v * 0


@njit(inline="always")
def dropped_row(dst, src, rmask, b):
    """dst = src * rmask[b], or a copy when there is no recurrent dropout.

    Used forward on h_tm1 and backward on its gradient (the same scaling).
    """
    if rmask.shape[0] == 0:
        copy_row(dst, src)
    else:
        for j in range(dst.shape[0]):
            dst[j] = src[j] * rmask[b, j]


@njit(inline="always")
def commit_row(state, new, real):
    """A padded step carries the state unchanged."""
    if real:
        copy_row(state, new)


@njit(inline="always")
def emit_row(out, h, real, zero_output):
    """Output of a step: the (committed) state h, or zeros at padded steps
    when zero_output_for_mask."""
    if real or not zero_output:
        copy_row(out, h)
    else:
        for j in range(out.shape[0]):
            out[j] = 0


@njit(inline="always")
def add_output_grad_row(dh, dout, real, zero_output):
    """Undo emit_row: the output was the state after the step unless it was
    a zeroed padded output, which carries no gradient."""
    if real or not zero_output:
        for j in range(dh.shape[0]):
            dh[j] += dout[j]


# ---------------------------------------------------------------------------
# Wrapper-side argument handling (plain Python).
# ---------------------------------------------------------------------------


_STAND_INS: dict = {}
# the kernels' float types as dtypes: `in` finds an array's dtype by identity first, sooner
# than comparing it with the scalar types (the same answer)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def stand_in(shape, dtype) -> np.ndarray:
    """A zero-size array of this shape and dtype for an argument a kernel does not use, kept
    for reuse: it holds nothing to write, and making a fresh one cost a few tenths of a
    microsecond, several times a call. Writable, C-ordered, as np.empty makes it (numba's
    type of the argument includes both: anything else would compile the kernels again)."""
    key = (shape, dtype)
    a = _STAND_INS.get(key)
    if a is None:
        if len(_STAND_INS) > 64:           # batch sizes come and go: keep it small
            _STAND_INS.clear()
        a = _STAND_INS[key] = np.empty(shape, dtype)
    return a


def _as(arr, dtype, shape, name):
    if type(arr) is np.ndarray and arr.dtype == dtype and arr.shape == shape and arr.flags.c_contiguous:
        return arr                          # what np.ascontiguousarray returns for it, sooner
    a = np.ascontiguousarray(arr, dtype=dtype)
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    return a


def prepare_forward(xp, n_gates, U, states, mask, rmask, X=None, W=None, b_in=None):
    """Validate and convert forward arguments to the kernels' conventions.

    The input (``xp``, or ``X``, ``W``, ``b_in``: see prepare_input) fixes the dtype
    (float32 or float64); everything float is cast to it and made C-contiguous.
    Returns ``(inputs, U, states, mask, rmask)``, inputs being prepare_input's tuple,
    with ``mask`` as (T,B) uint8 or an empty array, ``rmask`` as (B,u) or empty.
    """
    inputs = prepare_input(xp, X, W, b_in, n_gates, U)
    xp, X, T = inputs[0], inputs[1], inputs[-1]
    dtype = xp.dtype
    B, G = xp.shape[1], xp.shape[2]
    u = G // n_gates
    U = _as(U, dtype, (u, G), "U (recurrent kernel)")
    states = tuple([_as(s, dtype, (B, u), name) for s, name in states])
    if mask is None:
        mask = stand_in((0, 0), np.uint8)
    else:
        mask = np.asarray(mask)
        if mask.shape != (T, B):
            raise ValueError(f"mask has shape {mask.shape}, expected {(T, B)}")
        mask = np.ascontiguousarray(mask != 0, dtype=np.uint8)
    if rmask is None:
        rmask = stand_in((0, 0), dtype)
    else:
        rmask = _as(rmask, dtype, (B, u), "rmask (recurrent dropout mask)")
    return inputs, U, states, mask, rmask


def prepare_input(xp, X, W, b_in, n_gates, U):
    """The two ways a kernel gets its input projection (see input_rows): xp (T,B,G), or
    X (T,B,F) with W (F,G); either with the input bias b_in (G,) (None: zeros). Returns
    (xp, X, W, b_in, T) with empty stand-ins for the unused side."""
    if X is None:
        xp = np.asarray(xp)
        if xp.dtype not in _FLOATS:
            raise ValueError(f"xp must be float32 or float64, got {xp.dtype}")
        if xp.ndim != 3 or xp.shape[2] % n_gates:
            raise ValueError(f"xp must be (T, B, {n_gates}*units), got shape {xp.shape}")
        xp = np.ascontiguousarray(xp)
        dt, (T, B, G) = xp.dtype, xp.shape
        X, W = stand_in((0, 0, 0), dt), stand_in((0, G), dt)
    else:
        X = np.asarray(X)
        if X.dtype not in _FLOATS or X.ndim != 3:
            raise ValueError(f"X must be a float32 or float64 (T, B, F) array, got {X.dtype} {X.shape}")
        dt = X.dtype
        if X.strides[2] != X.itemsize or (X.flags.f_contiguous and not X.flags.c_contiguous):
            # rows need unit stride along the features; a time-major view of batch-major data
            # (rows T*F apart) is read in place, its steps never copied. One that NumPy calls
            # Fortran-ordered (one feature: a (T, B, 1) view) is copied, a T*B copy: the kernels
            # are compiled for C-ordered and strided inputs, not for a third layout
            X = np.ascontiguousarray(X)
        T, B, F = X.shape
        G = n_gates * (U.shape[0] if type(U) is np.ndarray else np.shape(U)[0])
        W = _as(W, dt, (F, G), "W (kernel)")
        xp = stand_in((0, B, G), dt)
    b_in = np.zeros(G, dt) if b_in is None else _as(b_in, dt, (G,), "b_in (input bias)")
    return xp, X, W, b_in, T


def smallest_normal(arr):
    """flush_row's threshold: 1024 times the smallest normal value of arr's float type, so
    that a flushed gradient times a factor in (0, 1) stays out of the subnormal range."""
    return arr.dtype.type(np.finfo(arr.dtype).tiny * 1024)


def prepare_backward(saved_dtype, out_shape, dout, final_grads):
    """Cast dout (T,B,u) (a read-only view: buffers.read_only) and the final-state gradients
    (B,u, None = zeros)."""
    dout = buffers.read_only(_as(dout, saved_dtype, out_shape, "dout"))
    shape = out_shape[1:]
    grads = tuple(
        np.zeros(shape, saved_dtype) if g is None else _as(g, saved_dtype, shape, name)
        for g, name in final_grads
    )
    return dout, grads
