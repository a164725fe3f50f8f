"""Generated kernel modules: written once to a cache folder under a hash of their source, then imported.

numba's cache=True keys compiled code by the source file's path and
modification time, so a module is written only when its file is missing (an
existing file has the same text, its name being the hash of that text): a
second process finds the file unchanged and loads the compiled kernels from
`__pycache__` beside it instead of compiling again.

The folder is cells/ in rnndsl's per-user cache folder (rnndsl.caches: private, checked
before use). A module file is imported only after its text is read back and found equal
to the source generated now. Without a usable cache folder (a read-only home) the modules
go to a private temporary folder removed at exit, and compile again in the next process.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from ..caches import cache_folder

_modules: dict[str, object] = {}
_lock = threading.Lock()
_private: list[Path] = []          # this process's fallback folder, removed at exit


def _private_folder() -> Path:
    """A folder of this process's own (mode 0700, as mkdtemp makes it), removed at exit."""
    if not _private:
        _private.append(Path(tempfile.mkdtemp(prefix="rnndsl-cells-")))
        atexit.register(shutil.rmtree, _private[0], True)
    return _private[0]


def cache_dir() -> Path:
    """cells/ in the per-user cache folder, else a private folder of this process."""
    return cache_folder("cells") or _private_folder()


def digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:20]


def _holds(path: Path, source: str) -> bool:
    """The file at path is a regular file (not a link) of ours holding exactly source."""
    try:
        st = os.lstat(path)
        if not os.path.isfile(path) or os.path.islink(path) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            return False
        with open(path, encoding="utf-8") as f:
            return f.read() == source
    except (OSError, UnicodeDecodeError):
        return False


def _write(path: Path, source: str) -> bool:
    """Write source to path atomically unless the file already holds it; False if that fails."""
    if _holds(path, source):
        return True
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(source)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return _holds(path, source)
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
            # the cache folder cannot be written: a private one for this process (compiled again next time)
            path = _private_folder() / path.name
            if not _write(path, source):
                raise OSError(f"cannot write the generated module {path}")
        name = f"rnndsl_cell_{key}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        _modules[key] = mod
        return mod
