"""The CLI fuzz at the default budget (tests/app/test_fuzz.py: FUZZ_SECONDS), in a process of its
own; prints one JSON line {"name": "fuzz", "ok", "detail", "failures", "counts"}.

Started in the background when the suite has collected its tests (tests/conftest.py), so
that its fixed time budget overlaps the suite's own work instead of adding to it.

    python tests/app/fuzz_check.py
"""

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]

import test_fuzz  # noqa: E402
from report import report  # noqa: E402


def main() -> int:
    def run():
        with tempfile.TemporaryDirectory() as tmp:
            failures, counts = test_fuzz.fuzz(Path(tmp), test_fuzz.FUZZ_SECONDS)
        return {"ok": not failures, "failures": failures, "counts": counts}

    return report("fuzz", run)


if __name__ == "__main__":
    sys.exit(main())
