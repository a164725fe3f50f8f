"""The CLI fuzz at the default budget (tests/app/test_fuzz.py: FUZZ_SECONDS), in a process of its
own; prints one JSON line {"name": "fuzz", "ok", "failures", "counts"}.

Started in the background when the suite has collected its tests (tests/conftest.py), so
that its fixed time budget overlaps the suite's own work instead of adding to it.

    python tests/app/fuzz_check.py
"""

import json
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]

import test_fuzz  # noqa: E402


def main() -> int:
    rec = {"name": "fuzz", "ok": False, "failures": [], "counts": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            failures, counts = test_fuzz.fuzz(Path(tmp), test_fuzz.FUZZ_SECONDS)
        rec.update(ok=not failures, failures=failures, counts=counts)
    except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
        rec["failures"] = ["the fuzz run itself failed:\n" + traceback.format_exc()[-3000:]]
    print(json.dumps(rec), flush=True)
    return 0 if rec["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
