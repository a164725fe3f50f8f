"""`pip install .` into a folder of its own finds the grammar and examples, and trains, from another
directory (the checks: tests/packaging_check.py, run in the background from the suite's start)."""

from pathlib import Path

import pytest

from background import check_case, reports_of


@pytest.mark.slow
def test_wheel_ships_grammar_and_runs_elsewhere():
    check_case(reports_of(Path(__file__).parent / "packaging_check.py", simulator=False), "packaging")
