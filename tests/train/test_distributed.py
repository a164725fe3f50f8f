"""Data-parallel training over MPI (issue 21): `mpiexec -n 2` runs of tests/train/mpi_check.py
and of `python -m rnndsl run` against one process. Each mpiexec start costs the ranks' imports;
the ranks share the compiled kernels through RNNDSL_CACHE_DIR."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import mpi4py  # noqa: F401
    MPIEXEC = shutil.which("mpiexec")
    WHY = None if MPIEXEC else "no mpiexec on PATH (pip install 'rnndsl[mpi]' brings MPICH's)"
except ImportError:
    MPIEXEC, WHY = None, "data-parallel training needs the [mpi] extra: pip install 'rnndsl[mpi]' (mpi4py, mpich)"
needs_mpi = pytest.mark.skipif(WHY is not None, reason=WHY or "")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEC = """input x: float[5, 3]
output x | lstm(6) | dense(3)
train {
  data = npz("tiny.npz")
  loss = "sparse_categorical_crossentropy"
  optimizer = adam
  epochs = 2
  batch_size = 8
}
"""


def _mpiexec(n, *args, timeout=120, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RNNDSL_NUM_THREADS="1")
    for var in ("PMI_RANK", "PMI_SIZE", "PMI_FD", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        env.pop(var, None)          # a test run itself under a launcher must not pass its rank on
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@needs_mpi
def test_two_and_four_ranks_give_one_process_weights_losses_and_metrics(tmp_path):
    """float64, no dropout: a vector output with batchnorm and a last partial batch (23 = 2*8 + 7),
    a masked per-step output with validation; weights, losses and metrics within 1e-10 of one
    process's under 2 ranks and under 4 (oversubscribed here; last batches of 7 and 4 rows), and
    a normal end says nothing on stderr."""
    sys.path.insert(0, str(HERE))
    try:
        import mpi_check
    finally:
        sys.path.remove(str(HERE))
    mpi_check.main(tmp_path / "one.npz", "off")
    one = np.load(tmp_path / "one.npz")
    for n in (2, 4):
        r = _mpiexec(n, str(HERE / "mpi_check.py"), str(tmp_path / f"{n}.npz"))
        assert r.returncode == 0, r.stderr[-3000:]
        assert "rnndsl:" not in r.stderr
        many = np.load(tmp_path / f"{n}.npz")
        assert int(many["size"]) == n
        assert {k for k in one.files if k != "size"} == {k for k in many.files if k != "size"}
        for k in one.files:
            if k != "size":
                assert _rel(many[k], one[k]) < 1e-10, (n, k)


@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_message():
    r = _mpiexec(2, str(HERE / "mpi_check.py"), "raise", timeout=90)
    assert r.returncode != 0
    assert "rank 1 of 2 failed: rank 1 fails on purpose" in r.stderr
    assert "ending the job on every rank" in r.stderr


@needs_mpi
def test_a_killed_rank_ends_the_job_and_every_rank_says_so():
    """Rank 1 SIGKILLs itself in its second epoch while rank 0 goes on to its next Allreduce:
    mpiexec SIGKILLs rank 0 (nothing in a rank can print then), and each rank's sentinel says
    what happened; the job ends (the timeout is the hang check) with a nonzero code."""
    r = _mpiexec(2, str(HERE / "mpi_check.py"), "kill", timeout=90)
    assert r.returncode != 0
    for rank in (0, 1):
        assert f"rnndsl: rank {rank} of 2 (pid " in r.stderr, r.stderr[-3000:]
    assert r.stderr.count("was killed without a word: by a signal") == 2
    assert "failed:" not in r.stderr


@needs_mpi
def test_run_resumes_with_another_number_of_ranks(tmp_path):
    """`run` for 2 epochs in one process, then `--resume` to 4 under 2 ranks, equals 4 epochs in
    one process (float32: within float32 rounding); rank 0 alone prints and writes."""
    from rnndsl.app.runner import train_spec
    from rnndsl.saving import load_model

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", x=rng.normal(size=(30, 5, 3)), y=rng.integers(0, 3, 30))
    spec = tmp_path / "tiny.rnn"
    spec.write_text(SPEC)
    import io

    train_spec(spec, quiet=True, out=tmp_path / "half.npz", stream=io.StringIO())
    shutil.copy(tmp_path / "half.npz", tmp_path / "resumed.npz")
    train_spec(spec, epochs=4, quiet=True, out=tmp_path / "half.npz", resume=True, stream=io.StringIO())
    r = _mpiexec(2, "-m", "rnndsl", "run", "tiny.rnn", "--epochs", "4", "--resume", "--out", "resumed.npz",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("resuming from resumed.npz after epoch 2") == 1       # rank 0 only
    assert "Epoch 4/4" in r.stdout and "Epoch 2/4" not in r.stdout
    one, two = load_model(tmp_path / "half.npz"), load_model(tmp_path / "resumed.npz")
    assert one.epoch == two.epoch == 4
    for a, b in zip(two.get_weights(), one.get_weights()):
        assert _rel(a, b) < 1e-5
    assert one.optimizer.iterations == two.optimizer.iterations


def test_outside_a_launcher_one_process_and_a_clear_error_without_mpi4py(monkeypatch):
    import rnndsl
    from rnndsl import TrainingError, distributed
    from rnndsl.train import distributed as dist

    assert (distributed.rank(), distributed.size()) == (0, 1)
    m = rnndsl.compile("input x: float[2, 2]\noutput x | dense(2)").configure(loss="mse")
    with pytest.raises(TrainingError, match="not running under an MPI launcher"):
        m.fit(np.zeros((4, 2, 2)), np.zeros((4, 2)), epochs=1, verbose=0, distributed=True)
    monkeypatch.setattr(dist, "_world", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)              # not installed
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(TrainingError, match=r"under an MPI launcher \(2 ranks\) but mpi4py is not installed: "
                                            r"pip install 'rnndsl\[mpi\]'"):
        m.fit(np.zeros((4, 2, 2)), np.zeros((4, 2)), epochs=1, verbose=0)
    monkeypatch.setattr(dist, "_world", None)


def test_ranks_on_one_machine_share_its_cores():
    """Under a launcher that starts 2 ranks here, each takes cores // 2 threads (RNNDSL_NUM_THREADS wins)."""
    code = "import os; from rnndsl.kernels.cpu import parallel; print(parallel.WORKERS, os.cpu_count())"
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPI_LOCALNRANKS="2")
    env.pop("RNNDSL_NUM_THREADS", None)
    workers, cores = map(int, subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                             check=True).stdout.split())
    assert workers == max(1, cores // 2)
    env["RNNDSL_NUM_THREADS"] = "3"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "3"
