"""The package's layering: train never imports the facade or the application (lazily or not)
nor reads a Model's private names; runtime never imports train or anything above it."""

import ast
from pathlib import Path

import rnndsl

ROOT = Path(rnndsl.__file__).parent
ABOVE_TRAIN = ("rnndsl.model", "rnndsl.cli", "rnndsl.app", "rnndsl.saving", "rnndsl.__main__")


def imports(path: Path):
    """(line, absolute module) for every import in the file, those inside functions too."""
    package = list(path.relative_to(ROOT.parent).parts[:-1])
    return imports_of(path.read_text(), package)


def imports_of(source: str, package: list[str]):
    """(line, module) for each import in source as though it sat in package (["rnndsl", "train"]);
    `from X import a` also yields X.a (a may be a module)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield node.lineno, module
            for a in node.names:
                yield node.lineno, f"{module}.{a.name}"


def modules(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def offences(package, bad):
    found = []
    for path in modules(package):
        for line, module in imports(path):
            if bad(module):
                found.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
    return found


def test_imports_walker_sees_relative_and_nested_imports():
    code = ("import numpy\nfrom .losses import get_loss\n"
            "def f():\n    from .. import load\n    if 1:\n        from ..model import Model\n")
    got = [m for _, m in imports_of(code, ["rnndsl", "train"])]
    assert got == ["numpy", "rnndsl.train.losses", "rnndsl.train.losses.get_loss", "rnndsl", "rnndsl.load",
                   "rnndsl.model", "rnndsl.model.Model"]


def test_train_imports_neither_the_facade_nor_the_application():
    def bad(module):
        return module in ("rnndsl",) or module.startswith(ABOVE_TRAIN) or (
            module.startswith("rnndsl.") and module.count(".") == 1 and module.split(".")[1] in (
                "compile", "load", "load_model", "Model"))
    assert offences("train", bad) == []


def test_train_reads_no_private_name_of_a_model():
    found = []
    for path in modules("train"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "model" and node.attr.startswith("_")):
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} model.{node.attr}")
    assert found == []


def test_runtime_imports_nothing_from_train_or_above():
    def bad(module):
        return module == "rnndsl" or module.startswith(("rnndsl.train",) + ABOVE_TRAIN)
    assert offences("runtime", bad) == []
