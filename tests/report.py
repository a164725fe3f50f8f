"""The one JSON line a background check prints, for tests/background.py to read."""

import json
import traceback


def report(name: str, run) -> int:
    """Print {"name", "ok", "detail", **run()} (run's fields may set ok, True by default); an
    exception is a failed check with its traceback as the detail. Returns the exit status."""
    rec = {"name": name, "ok": False, "detail": ""}
    try:
        rec.update({"ok": True, **run()})
    except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
        rec["detail"] = traceback.format_exc()[-3000:]
    print(json.dumps(rec), flush=True)
    return 0 if rec["ok"] else 1
