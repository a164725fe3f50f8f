"""Where rnndsl keeps what it compiles: a per-user folder, made private and checked before use.

The folder is $RNNDSL_CACHE_DIR, else the platform's user cache folder: $XDG_CACHE_HOME/rnndsl
or ~/.cache/rnndsl (Linux and other Unix), ~/Library/Caches/rnndsl (macOS),
%LOCALAPPDATA%/rnndsl/Cache (Windows). It holds the generated custom-cell modules (Python
source that rnndsl wrote; a module is imported only when its text equals what rnndsl
generates now) and numba's compiled code for them. Whoever can write there can run code in
rnndsl, so a folder that another user owns, or that others can write to, is refused with a
CacheError before anything in it is read, and a folder rnndsl creates is made mode 0700.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from .errors import CacheError

ENV = "RNNDSL_CACHE_DIR"


def user_cache_root() -> Path:
    """$RNNDSL_CACHE_DIR, else the platform's per-user cache folder for rnndsl."""
    given = os.environ.get(ENV)
    if given:
        return Path(given).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "rnndsl" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "rnndsl"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "rnndsl"


def _check_private(path: Path) -> None:
    """Refuse a folder that another user owns or that group or others can write to."""
    if not hasattr(os, "getuid"):           # Windows: per-user profile folders, ACLs
        return
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(f"the rnndsl cache {path} is not a folder; set {ENV} to a folder of your own")
    if st.st_uid != os.getuid():
        raise CacheError(f"the rnndsl cache folder {path} belongs to another user (uid {st.st_uid}); rnndsl "
                         f"would run code from it. Set {ENV} to a folder of your own")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheError(f"the rnndsl cache folder {path} can be written by other users (mode "
                         f"{stat.S_IMODE(st.st_mode):o}); rnndsl would run code from it. Run "
                         f"`chmod 700 {path}` or set {ENV} to a private folder")


_numba_folder: list[Path] = []       # where keep_compiled_code_here put the kernels' caches


def compiled_code_folder() -> Path | None:
    """The folder of rnndsl's compiled kernels (None: numba's own choice)."""
    return _numba_folder[0] if _numba_folder else None


def nothing_compiled_yet() -> bool:
    """No compiled kernel is cached yet: this run compiles (tens of seconds, once)."""
    folder = compiled_code_folder()
    return folder is not None and not any(folder.rglob("*.nbi"))


def sources_digest(modules) -> str:
    """A short hash of the modules' source files: the name of the folder their compiled code
    goes to. numba checks a cached function against its own file only, and a kernel inlines
    helpers from its neighbours: an edited helper must not leave the old code in use."""
    import hashlib

    h = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        path = getattr(module, "__file__", None)
        if path:
            h.update(module.__name__.encode())
            h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def keep_compiled_code_here(modules) -> Path | None:
    """Point the disk caches of the numba functions (cache=True) defined in `modules` at
    numba/<sources_digest> in rnndsl's cache folder, instead of __pycache__ beside the
    installed source (site-packages). Other code's numba caches are left where numba puts them. Nothing
    changes when NUMBA_CACHE_DIR is set (numba's own choice then) or the folder cannot be
    used (numba's default then; a custom cell still refuses an unsafe folder)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    try:
        folder = cache_folder("numba", sources_digest(modules))
    except (CacheError, OSError):
        return None
    if folder is None:
        return None
    from numba.core import config
    from numba.core.caching import FunctionCache
    from numba.core.registry import CPUDispatcher

    before = config.CACHE_DIR
    config.CACHE_DIR = str(folder)          # read when a function's cache is located, just below
    try:
        for module in modules:
            for obj in vars(module).values():
                if isinstance(obj, CPUDispatcher) and isinstance(getattr(obj, "_cache", None), FunctionCache):
                    obj.enable_caching()
    finally:
        config.CACHE_DIR = before
    _numba_folder[:] = [folder]
    return folder


def cache_folder(*parts: str) -> Path | None:
    """The cache folder (or a subfolder), created private (0700) where missing and checked,
    every level from the root down, before use. None when it cannot be created or written
    (a read-only home: the caller works without a cache); CacheError when it is not private."""
    root = user_cache_root()
    path = root.joinpath(*parts)
    try:
        for level in [root] + [root.joinpath(*parts[:k + 1]) for k in range(len(parts))]:
            if not level.exists():
                level.mkdir(mode=0o700, parents=True, exist_ok=True)
            _check_private(level)
        if not os.access(path, os.W_OK | os.X_OK):
            return None
    except OSError:
        return None
    return path
