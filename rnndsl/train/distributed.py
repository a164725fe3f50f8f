"""Synchronous data-parallel training over MPI (mpi4py), Horovod's design.

Each of N ranks holds the whole model. A global batch of B rows (the spec's batch_size)
is split into N contiguous shards of rows. Every rank draws the same shuffle (same seed),
runs forward and BPTT on its shard, and the step's gradients go through one in-place
``Allreduce`` (sum) of one flat float64 buffer, so every rank applies the same update.

Exactness. The loss is a mean over the global batch: with per-output numerators
``num_k = sum_n s_n w_n l_n`` and denominators ``D_k = sum_n w_n`` (rows, or unmasked
steps of a per-step output), the global loss is ``sum_k (sum_r num_k,r) / (sum_r D_k,r)``.
A rank computes its shard's mean ``num_k,r / D_k,r`` and its gradient, and scales both by
``D_k,r / D_k`` before the sum. D_k is known for vector outputs (the global batch's rows);
for a per-step output, where masks make it data-dependent, the counts are summed first
(one small Allreduce). Batch normalisation takes its moments over the global batch
(``RunCtx.allreduce``). The result equals one process's up to the order of float sums.

MPI is used only when rnndsl runs under an MPI launcher (mpiexec, mpirun, srun) with more
than one rank; mpi4py is imported only then.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from ..errors import TrainingError

# What the launchers put in each rank's environment: MPICH/Hydra (PMI_SIZE), Open MPI, PMIx (srun --mpi=pmix)
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS")
LAUNCH_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")

ABORT_GRACE_S = 1.0
_world = None          # None: not looked at yet; False: not under MPI (or one rank)


def launched_size() -> int:
    """The number of ranks the launcher started, from the environment (1 when not launched by one)."""
    if not any(v in os.environ for v in LAUNCH_VARS):
        return 1
    for v in SIZE_VARS:
        try:
            return max(1, int(os.environ[v]))
        except (KeyError, ValueError):
            continue
    return 1


def world():
    """MPI's world communicator when rnndsl runs under an MPI launcher with several ranks, else None.
    Under a launcher without mpi4py: a TrainingError saying how to install it."""
    global _world
    if _world is None:
        n = launched_size()
        if n <= 1:
            _world = False
        else:
            try:
                from mpi4py import MPI
            except ImportError:
                raise TrainingError(
                    f"rnndsl runs under an MPI launcher ({n} ranks) but mpi4py is not installed: "
                    "pip install 'rnndsl[mpi]' (mpi4py and mpich), or run without mpiexec") from None
            comm = MPI.COMM_WORLD
            _world = comm if comm.Get_size() > 1 else False
            if _world:
                _abort_on_uncaught()
                _watch_for_a_silent_end(comm)
    return _world or None


def rank() -> int:
    """This process's rank in the MPI world (0 when not under MPI)."""
    w = world()
    return 0 if w is None else w.Get_rank()


def size() -> int:
    """The number of ranks in the MPI world (1 when not under MPI)."""
    w = world()
    return 1 if w is None else w.Get_size()


def abort(error: BaseException | str, code: int = 1) -> None:
    """End the whole job from this rank (MPI_Abort), after saying why on stderr; the other
    ranks would otherwise wait forever in their next Allreduce. No-op when not under MPI."""
    w = _world or None               # only a world this process has joined
    if w is None:
        return
    _sentinel_quiet()                # this rank says why itself
    if isinstance(error, KeyboardInterrupt):
        error = "interrupted"
    sys.stderr.write(f"rnndsl: rank {w.Get_rank()} of {w.Get_size()} failed: {error}\n"
                     "rnndsl: ending the job on every rank (MPI_Abort)\n")
    sys.stderr.flush()
    # the launcher forwards a rank's output through a pipe and drops what is still in it when
    # the job is torn down: give it a moment to pass the message on
    import time

    time.sleep(ABORT_GRACE_S)
    w.Abort(code)


def _abort_on_uncaught() -> None:
    """An exception that ends one rank's program ends the job (after its traceback), rather
    than leaving the other ranks waiting in an Allreduce."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        abort(value if not isinstance(value, KeyboardInterrupt) else "interrupted")

    sys.excepthook = hook


# The sentinel: a small process that outlives its rank and reads a pipe whose only writer is the
# rank. A rank's normal end (or abort(), which says why) writes one byte first; end of file with
# no byte means the rank was killed outright. MPICH's mpiexec answers one rank's death by sending
# SIGKILL to every rank's process group within milliseconds, so no rank can print anything then:
# the sentinel sits in its own session (out of reach of that SIGKILL) and holds the rank's stderr,
# which mpiexec forwards until every holder has closed it.
SENTINEL = """import os, sys
fd, rank, size, pid, host = sys.argv[1:]
try:
    said = os.read(int(fd), 1)
except OSError:
    said = b""
if not said:
    os.write(2, ("rnndsl: rank %s of %s (pid %s on %s) was killed without a word: by a signal (the OOM "
                 "killer, by hand, or mpiexec ending the job after another rank ended; mpiexec's "
                 "BAD TERMINATION names the pid that ended first)\\n" % (rank, size, pid, host)).encode())
"""
_sentinel_fd = None
_sentinel_proc = None                # held so that it is not collected (and warned about) while it runs


def _watch_for_a_silent_end(comm) -> None:
    """Start this rank's sentinel (above); a rank that cannot start one goes on without."""
    global _sentinel_fd, _sentinel_proc
    import atexit
    import socket
    import subprocess

    read, write = os.pipe()          # both ends close-on-exec: only the sentinel gets `read`
    argv = [sys.executable, "-I", "-S", "-c", SENTINEL, str(read), str(comm.Get_rank()), str(comm.Get_size()),
            str(os.getpid()), socket.gethostname()]
    try:
        _sentinel_proc = subprocess.Popen(argv, pass_fds=(read,), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        os.close(write)
        return
    finally:
        os.close(read)
    _sentinel_fd = write
    atexit.register(_sentinel_quiet)


def _sentinel_quiet() -> None:
    """Tell the sentinel this rank ends knowingly (async-signal safe: one os.write)."""
    global _sentinel_fd
    fd, _sentinel_fd = _sentinel_fd, None
    if fd is not None:
        try:
            os.write(fd, b".")
            os.close(fd)
        except OSError:
            pass


class DataParallel:
    """One fit's communication: shards of the global batch, the flat gradient buffer."""

    def __init__(self, comm, params: list[np.ndarray]):
        from mpi4py import MPI

        self.comm, self.sum_op = comm, MPI.SUM
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.shapes = [p.shape for p in params]
        self.dtypes = [p.dtype for p in params]
        self.sizes = [int(p.size) for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.buf = np.zeros(0)
        self.seconds = 0.0          # time spent in the step's Allreduce (bench/mpi.py)
        self.steps = 0

    def shard(self, idx: np.ndarray) -> np.ndarray:
        """This rank's contiguous part of a global batch's row indices."""
        m = len(idx)
        return idx[self.rank * m // self.size:(self.rank + 1) * m // self.size]

    def sum(self, values) -> np.ndarray:
        """The sum over ranks of a small float64 vector (a new array)."""
        a = np.ascontiguousarray(values, dtype=np.float64).copy()
        self.comm.Allreduce(self.comm_in_place(), a, op=self.sum_op)
        return a

    @staticmethod
    def comm_in_place():
        from mpi4py import MPI

        return MPI.IN_PLACE

    def reduce_step(self, grads: list, extra: np.ndarray):
        """(summed grads, summed extra): every weight's gradient (None where no rank has one)
        and a few scalars, in one flat buffer, one in-place Allreduce."""
        import time

        n_w = len(self.sizes)
        total = int(self.offsets[-1]) + n_w + len(extra)
        if self.buf.shape != (total,):
            self.buf = np.zeros(total)
        buf = self.buf
        for i, g in enumerate(grads):
            part = buf[self.offsets[i]:self.offsets[i + 1]]
            if g is None:
                part[...] = 0.0
                buf[self.offsets[-1] + i] = 0.0
            else:
                part[...] = np.ravel(g)
                buf[self.offsets[-1] + i] = 1.0
        buf[self.offsets[-1] + n_w:] = extra
        t0 = time.perf_counter()
        self.comm.Allreduce(self.comm_in_place(), buf, op=self.sum_op)
        self.seconds += time.perf_counter() - t0
        self.steps += 1
        out = []
        for i, shape in enumerate(self.shapes):
            if buf[self.offsets[-1] + i] > 0:
                out.append(buf[self.offsets[i]:self.offsets[i + 1]].reshape(shape).astype(self.dtypes[i]))
            else:
                out.append(None)
        return out, buf[self.offsets[-1] + n_w:].copy()


def data_parallel(model, distributed) -> DataParallel | None:
    """The fit's DataParallel: when `distributed` is not False and the MPI world has more than one rank."""
    if distributed is False:
        return None
    comm = world()
    if comm is None:
        if distributed is True:
            raise TrainingError("distributed=True, but rnndsl is not running under an MPI launcher with more "
                                "than one rank (mpiexec -n N python ...)")
        return None
    return DataParallel(comm, model.executor.params)


__all__ = ["rank", "size", "world", "abort", "launched_size", "DataParallel", "data_parallel"]
