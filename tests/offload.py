"""Test files the suite runs in a second pytest process, beside its own.

The suite's own work is one process, mostly one core: compiling kernels one after another.
The custom cells' tests compile kernels of their own (each cell's generated module) that
no other test needs, so they run in a child pytest started as soon as the suite has
collected (tests/conftest.py), on the other core. Each of their tests is still an item of
the main session: when its turn comes, its outcome is read from the child's report instead
of being run again (pytest_runtest_protocol below), so a failure shows in the main report
with the child's traceback, and `-k`, `--lf` and the counts see every test as usual.

A session that collects only offloaded files (`pytest tests/cells`) runs them itself.
RNNDSL_TEST_OFFLOAD=0 turns the child off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _pytest.reports import TestReport

# the test files (relative to the repository) that run in the child: the cells' (not
# test_cells_cuda.py, which reads a background run of its own) and the element-wise table's:
# kernels no other test compiles (a file whose kernels the other process compiles too would be
# compiled twice, both processes at once)
OFFLOADED = tuple(f"tests/cells/test_cells_{name}.py" for name in
                  ("equivalence", "errors", "gradients", "language", "reductions", "size")) + ("tests/test_elementwise.py",)
# a child's report line: {"nodeid", "outcome", "longrepr", "duration"}
PLUGIN = "offload_child"


class Child:
    def __init__(self, root: Path, nodeids: list[str]):
        self.results: dict = {}
        fd, self.report = tempfile.mkstemp(prefix="rnndsl-offload-", suffix=".jsonl")
        os.close(fd)
        here = str(Path(__file__).resolve().parent)
        env = dict(os.environ, RNNDSL_OFFLOAD_REPORT=self.report,
                   PYTHONPATH=os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
        files = sorted({n.split("::")[0] for n in nodeids})
        self.wanted = set(nodeids)
        self.log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")      # not a pipe: it never fills
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", PLUGIN,
                                      *files], cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def result(self, nodeid: str, timeout: float = 1500) -> dict | None:
        """The child's report of one test, waiting for it; None when the child ended without one."""
        deadline = time.monotonic() + timeout
        while nodeid not in self.results:
            self._read()
            if nodeid in self.results:
                break
            if self.proc.poll() is not None:
                self._read()
                return self.results.get(nodeid)
            if time.monotonic() > deadline:
                self.stop()
                return None
            time.sleep(0.05)
        return self.results[nodeid]

    def _read(self) -> None:
        with open(self.report, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):
                    rec = json.loads(line)
                    self.results[rec["nodeid"]] = rec

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()
        try:
            os.unlink(self.report)
        except OSError:
            pass


_child: Child | None = None


def offloaded(nodeid: str) -> bool:
    return nodeid.split("::")[0] in OFFLOADED


def start(session, items) -> None:
    """Start the child for the offloaded items, when the session has others too."""
    global _child
    if os.environ.get("RNNDSL_TEST_OFFLOAD") == "0" or os.environ.get("RNNDSL_OFFLOAD_REPORT") \
            or session.config.option.collectonly:
        return
    mine = [i.nodeid for i in items if offloaded(i.nodeid)]
    if not mine or len(mine) == len(items):
        return
    _child = Child(Path(session.config.rootpath), mine)


def stop() -> None:
    global _child
    if _child is not None:
        _child.stop()
        _child = None


def run_from_child(item) -> bool:
    """pytest_runtest_protocol for an offloaded item: its reports from the child's outcome."""
    if _child is None or item.nodeid not in _child.wanted:
        return False
    rec = _child.result(item.nodeid)
    if rec is None:
        rec = {"outcome": "failed", "duration": 0.0,
               "longrepr": "the offloaded run (tests/offload.py) ended without a report of this test:\n"
                           + _child.output[-4000:]}
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for when in ("setup", "call", "teardown"):
        outcome, longrepr = "passed", None
        if when == "call" and rec["outcome"] != "skipped":
            outcome, longrepr = rec["outcome"], rec.get("longrepr")
        if when == "setup" and rec["outcome"] == "skipped":
            outcome, longrepr = "skipped", (str(item.path), item.location[1] or 0, rec.get("longrepr") or "skipped")
        if when == "call" and rec["outcome"] == "skipped":
            continue
        report = TestReport(item.nodeid, item.location, {}, outcome, longrepr, when,
                            duration=rec.get("duration", 0.0) if when == "call" else 0.0)
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
