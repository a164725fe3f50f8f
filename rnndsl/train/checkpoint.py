"""Checkpoints: one .npz of named arrays plus JSON metadata, written atomically.

Layout: the arrays under their own names, and under the reserved key
``__rnndsl_meta__`` a uint8 array holding the UTF-8 JSON of
``{"format": "rnndsl-checkpoint", "version": N, "meta": {...}}``.
No pickle is written or read.

Atomicity: the archive goes to a temporary file in the target's directory
(``.NAME.PID.XXXXXXXX.rnndsl-tmp``), is flushed and fsync'ed, then os.replace'd
over the target and the directory is fsync'ed. A crash at any point leaves
either the old file or the new one, never a mix; the temporary file is removed
on failure, and one a killed process left behind is removed by the next write
of the same target.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import zipfile
from pathlib import Path

import numpy as np

from rnndsl.data.npyfile import NpzReader, file_head, memory_limit
from rnndsl.errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "open_checkpoint", "CheckpointFile", "atomic_write",
           "unwritable", "remove_stale_temps", "TEMP_SUFFIX", "FORMAT_TAG",
           "FORMAT_VERSION", "META_KEY", "MAX_META_BYTES"]

FORMAT_TAG = "rnndsl-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__rnndsl_meta__"
TEMP_SUFFIX = ".rnndsl-tmp"  # how a temporary file of an atomic write is named, to be recognised
_STARTED = time.time()       # temporaries older than this process cannot be its own
MAX_META_BYTES = 1 << 28      # the JSON metadata (spec text, generator states): far above any real one


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every OS (e.g. Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_npz(f, payload: dict[str, np.ndarray]) -> None:
    """The archive np.savez writes (stored zip of NAME.npy members), done by hand
    so that any array name works (np.savez reserves 'file' and 'allow_pickle')."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in payload.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)


def save_checkpoint(path, arrays: dict, meta: dict | None = None) -> Path:
    """Write ``arrays`` (name -> ndarray) and JSON-able ``meta`` to ``path``
    (used exactly as given, no suffix added) atomically; returns the path."""
    path = Path(path)
    payload: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"checkpoint array names must be non-empty strings, got {name!r}")
        if name.startswith("__rnndsl"):
            raise CheckpointError(f"array name '{name}' is reserved for rnndsl's own entries")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise CheckpointError(f"array '{name}' has dtype object; checkpoints hold numeric arrays only")
        payload[name] = arr
    try:
        text = json.dumps({"format": FORMAT_TAG, "version": FORMAT_VERSION, "meta": meta or {}},
                          default=_json_default)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint metadata for {path} is not JSON-able: {e}") from None
    payload[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    why = unwritable(path)
    if why:
        raise CheckpointError(f"cannot write checkpoint {path}: {why}")
    atomic_write(path, lambda f: _write_npz(f, payload), CheckpointError, "checkpoint")
    return path


def unwritable(path) -> str | None:
    """Why a file cannot be written at ``path`` (None when it can): checked before long work
    so that a bad path is reported before training, not after."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        return f"directory {directory} does not exist"
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if path.is_dir():
        return f"{path} is a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} exists and is not writable"
    return None


def _temp_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def _alive(pid: int) -> bool:
    if os.name == "nt":     # os.kill(pid, 0) would send CTRL_C_EVENT there: count every writer as alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True
    return True


def remove_stale_temps(path) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left beside it: named
    ``.NAME.PID.XXXXXXXX.rnndsl-tmp`` (or ``.tmp``, as older versions named them), older
    than this process and written by a process that is gone. Returns what was removed."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}(?:{re.escape(TEMP_SUFFIX)}|\.tmp)")
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not entry.is_file(follow_symlinks=False) or st.st_mtime >= _STARTED or \
                    (int(m.group(1)) != os.getpid() and _alive(int(m.group(1)))):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def atomic_write(path, write, error=CheckpointError, what: str = "file") -> Path:
    """Write ``path`` through ``write(f)`` on a temporary sibling that replaces it only when
    complete (flushed and fsync'ed): a crash leaves the old file or the new one. Stale
    temporaries of earlier killed writes of the same path are removed first."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    remove_stale_temps(path)
    tmp = _temp_name(path)
    try:
        # O_EXCL: never clobber another writer's temp file; 0o666 honours umask.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise error(f"cannot write {what} {path}: {e.strerror or e}") from e
        raise
    _fsync_dir(directory)
    return path


class CheckpointFile:
    """An open checkpoint: ``meta`` (checked), ``names`` (its arrays), ``read(name, expect=shape)``.

    Only the metadata is read on opening; each array is read when asked for, its
    declared shape checked first (against ``expect``, the file and the memory bound:
    see rnndsl/data/npyfile.py), so members nobody asks for cost nothing."""

    def __init__(self, path):
        path = Path(path)
        self.path = path
        if not path.exists():
            raise CheckpointError(f"checkpoint not found: {path}")
        if path.is_dir():
            raise CheckpointError(f"checkpoint path {path} is a directory, not a file")
        head = file_head(path, CheckpointError, "checkpoint ")
        if not head.startswith(b"PK"):
            what = "a single .npy array" if head.startswith(b"\x93NUMPY") else "not an .npz archive"
            if not head:
                what = "empty"
            raise CheckpointError(f"{path} is not an rnndsl checkpoint ({what})")
        self._npz = NpzReader(path, CheckpointError, "checkpoint")
        try:
            self.meta = self._read_meta()
        except BaseException:
            self._npz.close()
            raise

    def _read_meta(self) -> dict:
        path = self.path
        if META_KEY not in self._npz:
            raise CheckpointError(
                f"{path} is not an rnndsl checkpoint: it is an .npz without the "
                f"'{META_KEY}' entry (written by something else?)")
        raw = self._npz.read(META_KEY, kinds="u", limit=MAX_META_BYTES)
        try:
            doc = json.loads(np.ascontiguousarray(raw, dtype=np.uint8).tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise CheckpointError(f"checkpoint {path} has corrupt metadata ({type(e).__name__}: "
                                  f"{str(e)[:200]})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_TAG:
            tag = doc.get("format") if isinstance(doc, dict) else None
            raise CheckpointError(f"{path} is not an rnndsl checkpoint (format tag {str(tag)[:80]!r})"
                                  if isinstance(tag, str) or tag is None else
                                  f"{path} is not an rnndsl checkpoint (format tag of type {type(tag).__name__})")
        version = doc.get("version")
        if type(version) is not int or version < 1:
            raise CheckpointError(f"checkpoint {path} has an invalid format version {str(version)[:40]!r}")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {path} has format version {version}, newer than this rnndsl reads "
                f"(up to {FORMAT_VERSION}); upgrade rnndsl to load it")
        meta = doc.get("meta")
        if not isinstance(meta, dict):
            raise CheckpointError(f"checkpoint {path} has corrupt metadata (meta is not an object)")
        return meta

    @property
    def names(self) -> list[str]:
        return [n for n in self._npz.names if n != META_KEY]

    def __contains__(self, name: str) -> bool:
        return name != META_KEY and name in self._npz

    def read(self, name: str, expect=None) -> np.ndarray:
        return self._npz.read(name, expect=expect)

    def close(self) -> None:
        self._npz.close()

    def __enter__(self) -> "CheckpointFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_checkpoint(path) -> CheckpointFile:
    """Open a checkpoint written by save_checkpoint; read its arrays with ``.read``."""
    return CheckpointFile(path)


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by save_checkpoint whole: ``(arrays, meta)``. Every array
    is checked before it is made, and all of them together must fit the memory bound."""
    with CheckpointFile(path) as ck:
        arrays, total, limit = {}, 0, memory_limit()
        for name in ck.names:
            arrays[name] = ck.read(name)
            total += arrays[name].nbytes
            if total > limit:
                raise CheckpointError(f"checkpoint {path}: its arrays take more than the memory "
                                      f"bound of {limit:,} bytes together")
        return arrays, ck.meta
