"""Checkpoints: one .npz of named arrays plus JSON metadata, written atomically.

Layout: the arrays under their own names, and under the reserved key
``__rnndsl_meta__`` a uint8 array holding the UTF-8 JSON of
``{"format": "rnndsl-checkpoint", "version": N, "meta": {...}}``.
No pickle is written or read.

Atomicity: the archive goes to a temporary file in the target's directory,
is flushed and fsync'ed, then os.replace'd over the target and the directory
is fsync'ed. A crash at any point leaves either the old file or the new one,
never a mix; the temporary file is removed on failure.
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
import zlib
from pathlib import Path

import numpy as np

from rnndsl.errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "FORMAT_TAG", "FORMAT_VERSION", "META_KEY"]

FORMAT_TAG = "rnndsl-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__rnndsl_meta__"


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

    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CheckpointError(f"cannot write checkpoint {path}: directory {directory} does not exist")
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # O_EXCL: never clobber another writer's temp file; 0o666 honours umask.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CheckpointError(f"cannot write checkpoint {path}: {e}") from e
        raise
    _fsync_dir(directory)
    return path


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by save_checkpoint: ``(arrays, meta)``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a directory, not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    if not head.startswith(b"PK"):
        what = "a single .npy array" if head.startswith(b"\x93NUMPY") else "not an .npz archive"
        if not head:
            what = "empty"
        raise CheckpointError(f"{path} is not an rnndsl checkpoint ({what})")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if META_KEY not in names:
                raise CheckpointError(
                    f"{path} is not an rnndsl checkpoint: it is an .npz without the "
                    f"'{META_KEY}' entry (written by something else?)")
            raw = z[META_KEY]
            arrays = {n: z[n] for n in names if n != META_KEY}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {e})") from e
    try:
        doc = json.loads(bytes(np.asarray(raw, dtype=np.uint8)).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} has corrupt metadata ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path} is not an rnndsl checkpoint (format tag "
                              f"{doc.get('format') if isinstance(doc, dict) else None!r})")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"checkpoint {path} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, newer than this rnndsl reads "
            f"(up to {FORMAT_VERSION}); upgrade rnndsl to load it")
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has corrupt metadata (meta is not an object)")
    return arrays, meta
