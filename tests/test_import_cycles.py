"""The import graph points one way. An AST scan of module-level imports (not those inside functions or under
``if TYPE_CHECKING:``) among our packages finds no cycle, and no app imports at module level from an app to
its right in DESIGN.md's order: stores ← materials ← customers ← campaigns; portal (infrastructure) is
usable by all and itself imports none of them at module level."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The WeCom sandbox (free of Django) imports none of ours; portal (infrastructure) imports no app.
ORDER = {"wecom_sandbox": -2, "portal": -1, "stores": 0, "materials": 1, "customers": 2, "campaigns": 3}
PACKAGES = tuple(package for package in ORDER if (ROOT / package).is_dir())


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in {getattr(test, "id", None), getattr(test, "attr", None)}


def _top_level_imports(body: list) -> list[str]:
    """Imports run when the module is imported: its body, and the if/try/with/class blocks in it; not function
    bodies, nor ``if TYPE_CHECKING:`` blocks (both are lazy)."""
    found = []
    for node in body:
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]  # `from pkg import module`
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_type_checking(node):
            found += _top_level_imports([c for c in ast.iter_child_nodes(node)
                                         if isinstance(c, ast.stmt | ast.excepthandler)])
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    modules = {_module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t for t in _top_level_imports(ast.parse(path.read_text(encoding="utf-8")).body) if t in modules}
        graph[name] = targets - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_back_through_a_cycle():
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle at module level: " + " → ".join(cycle or [])


def test_apps_import_only_leftwards_and_portal_imports_no_app():
    # portal wires the apps together at the edges (urls, settings strings, the Celery app) only lazily.
    wrong = sorted(f"{source} → {target}" for source, targets in import_graph().items() for target in targets
                   if ORDER[target.split(".")[0]] > ORDER[source.split(".")[0]])
    assert not wrong, "imports against the dependency direction (DESIGN.md):\n" + "\n".join(wrong)


def test_the_scan_sees_a_cycle_and_skips_lazy_imports():
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\ntry:\n    import c\nexcept ImportError:\n"
                     "    import d\nclass K:\n    import e\ndef f():\n    import g\n")
    assert _top_level_imports(tree.body) == ["a", "c", "d", "e"]
    assert _cycle({"x": {"y"}, "y": {"z"}, "z": {"x"}}) == ["x", "y", "z", "x"]
    assert _cycle({"x": {"y"}, "y": set()}) is None
