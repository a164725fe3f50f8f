"""The pytest plugin of tests/offload.py's child: one JSON line per test, its outcome, to the
file RNNDSL_OFFLOAD_REPORT names (written when the test's last phase is reported)."""

import json
import os

_seen: dict = {}


def pytest_runtest_logreport(report):
    rec = _seen.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed", "longrepr": None,
                                           "duration": 0.0})
    if report.when == "call":
        rec["duration"] = report.duration
    if report.failed and rec["outcome"] != "failed":
        rec["outcome"], rec["longrepr"] = "failed", f"({report.when}) {report.longreprtext}"
    elif report.skipped and rec["outcome"] == "passed":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        rec["outcome"], rec["longrepr"] = "skipped", reason
    if report.when == "teardown":
        with open(os.environ["RNNDSL_OFFLOAD_REPORT"], "a", encoding="utf-8") as f:
            f.write(json.dumps(_seen.pop(report.nodeid)) + "\n")
