""".npy files and .npz members read without trusting them.

``np.load`` decompresses a member whole and allocates whatever shape its
header declares, so a small hostile file can ask for terabytes. Here a
member's header is read first (numpy.lib.format's header readers, on the zip
member itself); its dtype must be plain numbers, and its shape must match
what the caller expects, agree with the bytes the member holds, fit what the
file on disk could hold, and fit in memory; only then is the array made.
Nothing is unpickled: object arrays are refused from the header alone.
Only the members asked for are read, so extra members cost nothing.

Errors are raised as the caller's class (DataError for data,
CheckpointError for checkpoints) and name the file and the member.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from rnndsl.errors import DataError

__all__ = ["NpzReader", "read_npy", "memory_limit", "NUMERIC_KINDS"]

NUMERIC_KINDS = "biuf"        # bool, int, uint, float: everything rnndsl computes with
_MAX_HEADER = 10000           # numpy's own default bound on an .npy header
_DEFLATE_RATIO = 1032         # deflate's largest expansion: a member cannot hold more
_CHUNK = 1 << 24
# opening a broken zip, or reading a broken member, surfaces as any of these (zipfile, zlib,
# numpy's header parser): every reader of a zip rnndsl is given catches them all
BROKEN_ZIP = (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError, TypeError, SyntaxError,
           RecursionError, OverflowError, NotImplementedError, RuntimeError, UnicodeDecodeError)


def memory_limit() -> int:
    """The most bytes one array read from a file may take: the machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 1 << 40


def file_head(path, error, what: str = "") -> bytes:
    """The first 6 bytes of a file (b"PK" starts an .npz, b"\\x93NUMPY" an .npy), or `error`
    naming the file when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(6)
    except OSError as e:
        raise error(f"cannot read {what}{path}: {e.strerror or e}") from None


def _figure(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit} ({n:,} bytes)"
    return f"{n} bytes"


def _header(fp, error, where: str):
    """(shape, fortran_order, dtype) of the .npy stream ``fp``, positioned at its data."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=_MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=_MAX_HEADER)
        else:
            raise error(f"{where}: .npy format version {version[0]}.{version[1]} is not read "
                        "(versions 1.0 and 2.0 are)")
    except error:
        raise
    except Exception as e:  # noqa: BLE001 - numpy parses the header's Python literal with tokenize and
        # ast: arbitrary bytes there can raise any of their errors, and every one means a bad header
        raise error(f"{where} is not a valid .npy array: truncated or corrupt ({type(e).__name__}: "
                    f"{str(e)[:200]})") from None
    if any(d < 0 for d in shape):
        raise error(f"{where}: the header declares a negative dimension, shape {shape}")
    return shape, fortran, dtype


def _check(where: str, shape, dtype, error, kinds: str, expect, available: int | None, limit: int | None):
    """The checks made on the header alone; returns the array's size in bytes."""
    if dtype.hasobject:
        raise error(f"{where} holds Python objects (dtype object); only numeric arrays are read, "
                    "never pickled data")
    if dtype.kind not in kinds or dtype.shape or dtype.names:
        raise error(f"{where} has dtype {dtype}; only numbers are read "
                    "(booleans, integers, floating point)")
    if expect is not None and tuple(shape) != tuple(expect):
        raise error(f"{where} has shape {tuple(shape)}, expected {tuple(expect)}")
    nbytes = math.prod(shape) * dtype.itemsize
    if available is not None and nbytes != available:
        raise error(f"{where} declares shape {tuple(shape)} of {dtype} ({_figure(nbytes)}) but holds "
                    f"{_figure(available)} of data: truncated or corrupt")
    limit = memory_limit() if limit is None else limit
    if nbytes > limit:
        raise error(f"{where} declares shape {tuple(shape)} of {dtype}: {_figure(nbytes)}, more than "
                    f"the memory bound of {_figure(limit)}")
    return nbytes


def _read_data(fp, shape, fortran: bool, dtype, nbytes: int, error, where: str) -> np.ndarray:
    arr = np.empty(math.prod(shape), dtype=dtype)
    view = memoryview(arr.view(np.uint8))       # bytes, whatever the dtype's byte order
    pos = 0
    try:
        while pos < nbytes:
            n = fp.readinto(view[pos:pos + _CHUNK])
            if not n:
                raise error(f"{where} is truncated or corrupt: {pos:,} of {nbytes:,} data bytes")
            pos += n
        if fp.read(1):   # also makes zipfile check the member's CRC
            raise error(f"{where} holds more bytes than its shape {tuple(shape)} needs: truncated or corrupt")
    except error:
        raise
    except BROKEN_ZIP as e:
        raise error(f"{where} is truncated or corrupt ({type(e).__name__}: {e})") from None
    if not dtype.isnative:
        arr.byteswap(inplace=True)
        arr = arr.view(dtype.newbyteorder("="))
    if fortran:
        return arr.reshape(shape[::-1]).transpose()
    return arr.reshape(shape)


def read_npy(path, error=DataError, kinds: str = NUMERIC_KINDS, expect=None, limit: int | None = None):
    """The array of an .npy file, checked as the module says before it is made."""
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            shape, fortran, dtype = _header(f, error, where)
            nbytes = _check(where, shape, dtype, error, kinds, expect, size - f.tell(), limit)
            return _read_data(f, shape, fortran, dtype, nbytes, error, where)
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror or e}") from None


class NpzReader:
    """The arrays of an .npz file, read one member at a time and only on request.

    ``names`` lists the arrays (members ``NAME.npy``); ``read(name, expect=shape)``
    checks the member's header against ``expect``, the member's own size, the
    file's size and the memory bound before it allocates.
    """

    def __init__(self, path, error=DataError, what: str = ""):
        self.path, self.error = Path(path), error
        self.label = f"{what} {self.path}".strip()
        try:
            self.disk_size = self.path.stat().st_size
            self._zip = zipfile.ZipFile(self.path)
        except BROKEN_ZIP as e:
            raise error(f"{self.label} is not a readable .npz archive: truncated or corrupt "
                        f"({type(e).__name__}: {e})") from None
        self._members = {}
        for info in self._zip.infolist():
            if info.filename.endswith(".npy"):
                self._members[info.filename[:-4]] = info

    @property
    def names(self) -> list[str]:
        return list(self._members)

    def __contains__(self, name: str) -> bool:
        return name in self._members

    def __enter__(self) -> "NpzReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def _where(self, name: str) -> str:
        return f"{self.label}: array '{name}'"

    def _open(self, name: str):
        info = self._members.get(name)
        where = self._where(name)
        if info is None:
            raise self.error(f"{self.label} has no array '{name}'")
        # what the member's recorded sizes promise must fit in the file that holds it
        if info.header_offset + info.compress_size > self.disk_size:
            raise self.error(f"{where} is truncated or corrupt: the archive records "
                             f"{_figure(info.compress_size)} for it but the file has {_figure(self.disk_size)}")
        most = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
            info.compress_size * _DEFLATE_RATIO + 1024
        if info.file_size > most:
            raise self.error(f"{where} claims {_figure(info.file_size)}, more than its "
                             f"{_figure(info.compress_size)} of stored data can hold: truncated or corrupt")
        try:
            fp = self._zip.open(info)
        except BROKEN_ZIP as e:
            raise self.error(f"{where} is truncated or corrupt ({type(e).__name__}: {e})") from None
        return fp, info, where

    def read(self, name: str, expect=None, kinds: str = NUMERIC_KINDS, limit: int | None = None) -> np.ndarray:
        """The array ``name``; ``expect`` (a shape) is checked before anything is allocated."""
        fp, info, where = self._open(name)
        try:
            with fp:
                shape, fortran, dtype = _header(fp, self.error, where)
                nbytes = _check(where, shape, dtype, self.error, kinds, expect, info.file_size - fp.tell(), limit)
                return _read_data(fp, shape, fortran, dtype, nbytes, self.error, where)
        except self.error:
            raise
        except BROKEN_ZIP as e:
            raise self.error(f"{where} is truncated or corrupt ({type(e).__name__}: {e})") from None
