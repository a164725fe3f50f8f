"""One registry per concept: a spec's train block takes exactly the losses, metrics,
optimizers (with their options) and data sources that the Python API takes."""

import ast as pyast
import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import rnndsl
from rnndsl.cli import main
from rnndsl.data.registry import COMMON_OPTIONS, SOURCE_OPTIONS, SOURCES
from rnndsl.errors import RnnError
from rnndsl.train.losses import get_loss, loss_names
from rnndsl.train.metrics import get_metric, metric_names
from rnndsl.train.optimizers import OPTIMIZERS, get_optimizer, optimizer_options

ROOT = Path(__file__).resolve().parents[2]
HEAD = 'input x: float[?, 3]\noutput x | lstm(4) | dense(3, activation="softmax")\n'


def _train(*settings: str) -> str:
    return HEAD + "train {\n" + "".join(f"  {s}\n" for s in settings) + "}\n"


def _check(tmp_path, text: str) -> tuple[int, str]:
    spec = tmp_path / "t.rnn"
    spec.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["check", str(spec)])
    return status, err.getvalue()


def _listed(text: str, message: str, intro: str) -> list[str]:
    """The names the checker lists in the hint of its error `message` ("intro a, b, c")."""
    with pytest.raises(RnnError) as info:
        rnndsl.compile(text)
    diag = next(d for d in info.value.diagnostics if message in d.message)
    assert diag.hint.startswith(intro), diag.hint
    return diag.hint[len(intro):].split(", ")


def test_adamw_and_every_metric_fit_takes_pass_check_and_train(tmp_path):
    names = [n for n in metric_names() if n != "sparse_categorical_accuracy"]
    assert {"accuracy", "mse", "mae"} <= set(names)
    text = _train('loss = "categorical_crossentropy"',
                  "optimizer = adamw(learning_rate=0.01, weight_decay=0.004)",
                  "metrics = [" + ", ".join(f'"{n}"' for n in names) + "]")
    status, err = _check(tmp_path, text)
    assert status == 0, err
    m = rnndsl.compile(text, seed=0)
    x = np.random.default_rng(0).normal(size=(8, 5, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[np.arange(8) % 3]
    h = m.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert set(h.history) == {"loss", *names}
    opt = m.train_config.optimizer
    assert type(opt).__name__ == "AdamW" and opt.weight_decay == 0.004 and opt.learning_rate == 0.01


def test_sparse_metric_and_every_loss_and_optimizer_pass_check(tmp_path):
    assert _check(tmp_path, _train('loss = "sparse_categorical_crossentropy"',
                                   'metrics = ["sparse_categorical_accuracy"]'))[0] == 0
    for name in loss_names():
        assert _check(tmp_path, _train(f'loss = "{name}"'))[0] == 0, name
    for name in OPTIMIZERS:
        assert _check(tmp_path, _train(f"optimizer = {name}"))[0] == 0, name


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_option_is_taken_by_a_spec_and_trains(name):
    defaults = get_optimizer(name).get_config()
    args = ", ".join(f"{k}={str(defaults[k]).lower() if isinstance(defaults[k], bool) else defaults[k]}"
                     for k in optimizer_options(name) if defaults.get(k) is not None)
    m = rnndsl.compile(_train('loss = "categorical_crossentropy"', f"optimizer = {name}({args})"))
    x = np.zeros((4, 2, 3), "float32")
    m.train_on_batch(x, np.eye(3, dtype="float32")[[0, 1, 2, 0]])
    assert m.train_config.optimizer.get_config() == get_optimizer(defaults).get_config()


def test_the_names_the_checker_knows_are_the_registries():
    assert _listed(_train('loss = "zzzzzz"'), "unknown loss", "one of: ") == list(loss_names())
    assert _listed(_train('metrics = ["zzzzzz"]'), "unknown metric", "one of: ") == list(metric_names())
    assert _listed(_train("optimizer = zzzzzz"), "unknown optimizer", "one of: ") == list(OPTIMIZERS)
    assert _listed(_train("data = zzzzzz()"), "unknown data source", "one of: ") == list(SOURCES)
    for name in OPTIMIZERS:
        got = _listed(_train(f"optimizer = {name}(zzzzzz=1)"), "has no option", f"{name} takes: ")
        assert got == optimizer_options(name), name
    for name, options in SOURCE_OPTIONS.items():
        path = '"f", ' if name in ("npz", "npy", "csv", "text", "folder") else ""
        got = _listed(_train(f"data = {name}({path}zzzzzz=1)"), "has no option", f"{name} takes: ")
        assert got == [*options, *COMMON_OPTIONS], name
    # and the Python API takes each of them
    for name in loss_names():
        get_loss(name)
    for name in metric_names():
        get_metric(name)


def test_data_options_are_checked_alike_at_check_and_run_time():
    """The spec's check and the loader take the same range (addition: 1 to 18 digits)."""
    rnndsl.compile(_train('loss = "mse"', "data = addition(n=10, digits=18)"))
    x, y, _ = rnndsl.data.addition(10, digits=18)
    assert x.shape == (10, 37)
    with pytest.raises(RnnError, match="digits takes a whole number from 1 to 18"):
        rnndsl.compile(_train('loss = "mse"', "data = addition(n=10, digits=19)"))
    with pytest.raises(RnnError, match="digits must be between 1 and 18, got 19"):
        rnndsl.data.addition(10, digits=19)


def _imports(text: str, package: str) -> list[str]:
    """Every module a file of `package` imports, at the top or inside functions, relative
    imports resolved."""
    found = []
    for node in pyast.walk(pyast.parse(text)):
        if isinstance(node, pyast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, pyast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append(module)
            found += [f"{module}.{a.name}" for a in node.names]
    return found


def test_the_graph_imports_neither_train_nor_data():
    files = sorted((ROOT / "rnndsl" / "graph").rglob("*.py"))
    assert files
    upward = set()
    for f in files:
        package = ".".join(f.relative_to(ROOT).parts[:-1])
        upward |= {f"{f.relative_to(ROOT)}: {m}" for m in _imports(f.read_text(), package)
                   if re.match(r"rnndsl\.(train|data)(\.|$)", m)}
    assert not upward, sorted(upward)


def test_the_import_walker_sees_imports_inside_functions():
    text = ("from ..layers.base import REGISTRY\n"
            "def f():\n    from ..train.optimizers import get_optimizer\n    from ..data import registry\n"
            "    import rnndsl.train.losses\n")
    got = _imports(text, "rnndsl.graph")
    assert {"rnndsl.layers.base", "rnndsl.train.optimizers", "rnndsl.data.registry",
            "rnndsl.train.losses"} <= set(got)
