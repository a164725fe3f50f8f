"""Generated kernel modules: written once to a cache folder under a hash of their source, then imported.

numba's cache=True keys compiled code by the source file's path and
modification time, so a module is written only when its file is missing (an
existing file has the same text, its name being the hash of that text): a
second process finds the file unchanged and loads the compiled kernels from
`__pycache__` beside it instead of compiling again.

The folder is $RNNDSL_CACHE_DIR/cells, or rnndsl-cache/cells in the system's
temporary folder (where the parser caches its tables too).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path

_modules: dict[str, object] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    base = os.environ.get("RNNDSL_CACHE_DIR") or str(Path(tempfile.gettempdir()) / "rnndsl-cache")
    return Path(base) / "cells"


def digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:20]


def _write(path: Path, source: str) -> bool:
    """Write source to path atomically unless the file already holds it; False if the folder is not writable."""
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == source:
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(source)
        os.replace(tmp, path)
        return True
    except OSError:
        return False


def module_path(source: str) -> Path:
    return cache_dir() / f"cell_{digest(source)}.py"


def load_module(source: str):
    """The imported module of a generated source (one import per process and source)."""
    key = digest(source)
    with _lock:
        mod = _modules.get(key)
        if mod is not None:
            return mod
        path = module_path(source)
        if not _write(path, source):
            # no writable cache folder: a private one for this process (compiled again next time)
            path = Path(tempfile.mkdtemp(prefix="rnndsl-cells-")) / path.name
            _write(path, source)
        name = f"rnndsl_cell_{key}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        _modules[key] = mod
        return mod
