"""Makes tests/ importable from every test folder (shared helpers: spec_helpers, gradcheck, background)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402


def split_everything(monkeypatch):
    """Make rnndsl split every kernel call and product into 3 row ranges (the multi-core path)."""
    from rnndsl.kernels.cpu import ops, parallel

    monkeypatch.setattr(parallel, "WORKERS", 3)
    monkeypatch.setattr(ops, "MIN_SPLIT_GATHER", 0)
    monkeypatch.setattr(parallel, "MIN_SPLIT_WORK", 0)
    monkeypatch.setattr(parallel, "MIN_SPLIT_MATMUL", 0)
    monkeypatch.setattr(parallel, "MIN_ROWS", 1)
    assert len(parallel.chunks(7, 1)) == 3


@pytest.fixture
def forced_split(monkeypatch):
    """run(fn) -> (fn() on one thread, fn() with every call split across threads)."""
    from rnndsl.kernels.cpu import parallel

    def run(fn):
        monkeypatch.setattr(parallel, "WORKERS", 1)
        one = fn()
        split_everything(monkeypatch)
        return one, fn()
    return run


def pytest_addoption(parser):
    parser.addoption("--deep", action="store_true", default=False,
                     help="the long randomized tests at full size (tests/runtime/test_differential.py)")


# scripts run in the background from the suite's start (tests/background.py), by the test
# file that reads their reports: (script, under the CUDA simulator); one niced process each,
# they run on the core the suite's mostly single-threaded work leaves
BACKGROUND = {
    "tests/cuda_engine/test_cuda.py": ("tests/cuda_engine/cases.py", True),
    "tests/cells/test_cells_cuda.py": ("tests/cells/cuda_cases.py", True),
    "tests/test_packaging.py": ("tests/packaging_check.py", False),
    "tests/kernels/test_lstm_fused.py": ("tests/kernels/generic_cpu_check.py", False),
    "tests/app/test_fuzz.py": ("tests/app/fuzz_check.py", False),
}


def pytest_collection_modifyitems(session, config, items):
    """The tests that read the background runs, or the offloaded ones' outcomes
    (tests/offload.py), go last, so that those runs have the rest of the suite's time to
    finish in."""
    from offload import offloaded

    items.sort(key=lambda item: (item.nodeid.split("::")[0] in BACKGROUND, offloaded(item.nodeid)))


def pytest_collection_finish(session):
    """Start the background runs that collected tests will read, and the offloaded files'
    child session (tests/offload.py), now."""
    import offload
    from background import start

    offload.start(session, session.items)

    root = Path(__file__).resolve().parent.parent
    wanted = {item.nodeid.split("::")[0] for item in session.items}
    for test_file, (script, simulator) in BACKGROUND.items():
        if script == "tests/app/fuzz_check.py" and (session.config.getoption("--deep")
                                                    or os.environ.get("RNNDSL_FUZZ_SECONDS")
                                                    or os.environ.get("RNNDSL_FUZZ_CASE")):
            continue            # a budget or case of its own: test_fuzz runs it in-process
        if test_file in wanted and not session.config.option.collectonly:
            start(root / script, shards=1, nice=10, simulator=simulator)


def pytest_runtest_protocol(item, nextitem):
    from offload import run_from_child

    return True if run_from_child(item) else None


def pytest_sessionfinish(session):
    import offload
    from background import stop_all

    stop_all()
    offload.stop()
