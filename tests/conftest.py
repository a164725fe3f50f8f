"""Makes tests/ importable from every test folder (shared helpers: spec_helpers, simulator)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
