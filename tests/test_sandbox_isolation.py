"""The WeCom sandbox stays a separate program: no module of ``wecom_sandbox`` imports Django or one of our
packages, at module level or inside a function (an AST scan of every import, and of import_module calls),
and importing all of it in a fresh interpreter loads none of them (which also catches a third-party
library that would pull Django in). Importing ``portal`` would be enough to load Django (its __init__
starts the Celery app)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = ROOT / "wecom_sandbox"
FORBIDDEN = {"django", "rest_framework", "portal", "stores", "customers", "campaigns", "materials", "tests", "bench"}


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module name an import statement or an import_module("…") / __import__("…") call names."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and (
                getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) in
                {"import_module", "__import__"}):
            first = node.args[0]
            if isinstance(first, ast.JoinedStr) and first.values:  # f"wecom_sandbox.{area}": its fixed start
                first = first.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def _forbidden(tree: ast.AST) -> list[tuple[int, str]]:
    return [(line, name) for line, name in _imported(tree) if name.split(".")[0] in FORBIDDEN]


def test_no_sandbox_module_imports_django_or_our_packages():
    files = sorted(SANDBOX.rglob("*.py"))
    assert len(files) >= 10, files  # the scan sees the package
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in files
             for line, name in _forbidden(ast.parse(path.read_text(encoding="utf-8")))]
    assert not wrong, "the sandbox must stay free of Django and of our apps:\n" + "\n".join(wrong)


def test_importing_the_whole_sandbox_loads_no_django_and_none_of_ours():
    modules = sorted({"wecom_sandbox", *(f"wecom_sandbox.{p.stem}" for p in SANDBOX.glob("*.py")
                                         if p.stem != "__init__")})
    code = (f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
            f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({sorted(FORBIDDEN)!r})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_scan_sees_imports_anywhere_and_dynamic_ones():
    tree = ast.parse("import json\ndef f():\n    from django.conf import settings\n"
                     "class K:\n    def g(self):\n        import portal.wecom\n"
                     "importlib.import_module(f'stores.{x}')\nimportlib.import_module(f'wecom_sandbox.{x}')\n"
                     "from . import server\n")
    assert sorted(_forbidden(tree)) == [(3, "django.conf"), (6, "portal.wecom"), (7, "stores.")]
