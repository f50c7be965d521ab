"""The shape of the house, as far as a machine can hold it (import-linter checks the arrows)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("access", "billing_dialer", "cadences", "campaigns", "integrations")


def _product_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def _nested_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module and inner.module.split(".")[0] in PACKAGES:
                    found.append((inner.lineno, inner.module))
                elif isinstance(inner, ast.Import):
                    found += [(inner.lineno, a.name) for a in inner.names if a.name.split(".")[0] in PACKAGES]
    return found


@pytest.mark.parametrize("path", _product_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_level_import_of_the_product(path: Path) -> None:
    # A function-level import is how an import circle hides from import-linter's contracts.
    assert _nested_imports(ast.parse(path.read_text(), str(path))) == []


def test_every_imported_product_module_exists() -> None:
    # import-linter cannot see an import of a module that does not exist; Python can.
    missing = []
    for path in _product_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES and node.level == 0:
                module_path = ROOT.joinpath(*node.module.split("."))
                if not (module_path.with_suffix(".py").exists() or (module_path / "__init__.py").exists()):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
    assert missing == []
