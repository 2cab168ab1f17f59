"""Every module of the package imports, and every import statement of the package and of the workflow's job scripts
names something that exists, those inside functions too: they run only when called (lazy on purpose, see
tomosnake/__init__.py), so a name that moved is otherwise found by the first run that needs it."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import tomosnake
from tomosnake.workflow import SCRIPTS

PACKAGE = Path(tomosnake.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages(tomosnake.__path__, "tomosnake."))
SOURCES = sorted([*PACKAGE.rglob("*.py"), *SCRIPTS.glob("*.py")])


def test_the_package_is_all_found():
    assert {"tomosnake.outdir", "tomosnake.io.tori", "tomosnake.recon.stripe", "tomosnake.stages.plan"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)


def _imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None) of every import of a tomosnake module in ``path``, at any depth."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "tomosnake":
            found += [(node.lineno, node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names if a.name.split(".")[0] == "tomosnake"]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE.parent)) for p in SOURCES])
def test_every_import_statement_resolves(path: Path) -> None:
    missing = []
    for line, module, name in _imports(path):
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            missing.append(f"{path.name}:{line}: {module}: {err}")
            continue
        if name is not None and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{path.name}:{line}: cannot import name '{name}' from '{module}'")
    assert not missing, "\n".join(missing)
