"""`pip install .` into a folder of its own finds the grammar and examples, and trains, from another
directory (the checks: tests/packaging_check.py, run in the background from the suite's start)."""

from pathlib import Path

import pytest

from background import collect


@pytest.mark.slow
def test_wheel_ships_grammar_and_runs_elsewhere():
    reports, stderr = collect(Path(__file__).parent / "packaging_check.py", simulator=False)
    rec = reports.get("packaging")
    assert rec is not None, f"the packaging check reported nothing:\n{stderr[-4000:]}"
    if rec["skipped"]:
        pytest.skip(rec["detail"])
    assert rec["ok"], rec["detail"]
