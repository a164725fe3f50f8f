"""The cache folder is private and checked; nothing read from it is unpickled, and a planted
module is never imported."""

import os
import pickle
import stat

import numpy as np
import pytest

import rnndsl
from rnndsl import caches
from rnndsl.cells import cache as cell_cache
from rnndsl.cells import compiler
from rnndsl.cli import main
from rnndsl.errors import CacheError
from rnndsl.lang import parser

CELL = ("cell twice(units) {\n  h = tanh(x @ W + h @ U + b) * 2.0 - h * 0.5\n}\n"
        "input x: float[?, 3]\noutput x | rnn(twice(4))\n")


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(caches.ENV, str(root))
    monkeypatch.setattr(cell_cache, "_modules", {})
    return root


def test_default_folder_is_per_user(monkeypatch, tmp_path):
    monkeypatch.delenv(caches.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert caches.user_cache_root() == tmp_path / "xdg" / "rnndsl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert caches.user_cache_root() == caches.Path.home() / ".cache" / "rnndsl"


def test_folders_are_created_private(cache_root):
    folder = caches.cache_folder("cells")
    assert folder == cache_root / "cells"
    for level in (cache_root, folder):
        assert stat.S_IMODE(os.stat(level).st_mode) == 0o700


def test_a_folder_others_can_write_is_refused(cache_root):
    cache_root.mkdir(mode=0o700)
    os.chmod(cache_root, 0o777)
    with pytest.raises(CacheError, match="can be written by other users"):
        caches.cache_folder("cells")
    with pytest.raises(CacheError):             # before any cell module is written or read
        rnndsl.compile(CELL).predict(np.zeros((1, 2, 3)))
    assert not (cache_root / "cells").exists()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to hand a folder to another user")
def test_a_folder_of_another_user_is_refused(cache_root, tmp_path, capsys):
    cache_root.mkdir(mode=0o700)
    os.chown(cache_root, 12345, -1)
    with pytest.raises(CacheError, match="belongs to another user"):
        caches.cache_folder("cells")
    spec = tmp_path / "c.rnn"
    spec.write_text(CELL)
    assert main(["cell", str(spec)]) == 1
    assert "belongs to another user" in capsys.readouterr().err


def test_the_parser_unpickles_nothing(cache_root, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    parser.lark_parser.cache_clear()
    try:
        m = rnndsl.compile("input x: float[?, 2]\noutput x | lstm(3)")
    finally:
        parser.lark_parser.cache_clear()
    assert m.count_params() == 4 * 3 * (2 + 3 + 1)
    assert not cache_root.exists() or not any(cache_root.rglob("*lark*"))


def test_a_planted_module_is_never_imported(cache_root):
    m = rnndsl.compile(CELL, dtype="float64")
    cell = m.graph.layers[0].opts["cell"]
    x = np.linspace(-1, 1, 12).reshape(2, 2, 3)
    want = m.predict(x)
    path = cell_cache.module_path(compiler.source(cell))
    assert path.is_file()
    # someone with write access to the file plants code under the module's name
    marker = cache_root / "ran"
    path.write_text(f"open({str(marker)!r}, 'w').close()\n")
    link_target = cache_root / "elsewhere.py"
    link_target.write_text(compiler.source(cell))
    cell_cache._modules.clear()
    m2 = rnndsl.compile(CELL, dtype="float64")
    m2.set_weights(m.get_weights())
    np.testing.assert_allclose(m2.predict(x), want)
    assert not marker.exists()
    assert path.read_text() == compiler.source(cell)
    # a link in its place (even to the right text) is replaced by a file of our own
    path.unlink()
    path.symlink_to(link_target)
    cell_cache._modules.clear()
    rnndsl.compile(CELL, dtype="float64").predict(x)
    assert not path.is_symlink() and path.read_text() == compiler.source(cell)


def _kernel_cache_path(env):
    import subprocess
    import sys

    code = "import rnndsl.kernels.cpu.lstm as L; print(L.lstm_forward_kernel._cache._cache_path)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_compiled_kernels_are_cached_in_the_user_folder_not_the_installation(tmp_path):
    env = {caches.ENV: str(tmp_path / "c")}
    path = _kernel_cache_path(env)
    assert path.startswith(str(tmp_path / "c" / "numba")), path
    assert stat.S_IMODE(os.stat(tmp_path / "c" / "numba").st_mode) == 0o700
    # NUMBA_CACHE_DIR is numba's own setting: left to numba
    assert _kernel_cache_path({**env, "NUMBA_CACHE_DIR": str(tmp_path / "n")}).startswith(str(tmp_path / "n"))


def test_compiled_code_folder_changes_with_any_kernel_source(tmp_path):
    """numba checks a cached kernel against its own file only; the folder's name covers every
    module of the kernels, so an edited helper in a neighbour gets fresh compiled code."""
    import types

    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f(): return 1\n")
    b.write_text("def g(): return 2\n")
    mods = [types.SimpleNamespace(__name__="k.a", __file__=str(a)), types.SimpleNamespace(__name__="k.b", __file__=str(b))]
    before = caches.sources_digest(mods)
    assert caches.sources_digest(list(reversed(mods))) == before
    b.write_text("def g(): return 3\n")
    assert caches.sources_digest(mods) != before
