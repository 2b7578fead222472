"""Arrows point one way (docs/architecture.md, "Layers"): the front doors import the loops,
the loops the checks, the checks the math, and never back.

The graph is read from the source (every ``import`` and ``from … import``, at module level
or inside a function, but not under ``if TYPE_CHECKING:``), so a lazy import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "keel"

#: The check suite and the math: they compute, and never read or write state of their own.
LOWER = ("checks", "stats", "profile", "online", "estimate", "estimation", "performance")
#: What the lower layers may never reach, directly or through any chain of imports.
UPPER = ("store", "registry", "monitor", "alerts", "cli", "serve", "ui", "retrain", "history")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if path.name == "__init__.py" else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                names = [".".join([*base, *([node.module] if node.module else [])])]
            else:
                names = [node.module or ""]
            # ``from keel.checks import drift`` imports the module keel.checks.drift.
            names += [f"{names[0]}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name == "keel" or name.startswith("keel."))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # Keep only names that are modules (``from keel.x import y`` may name a function).
        targets = {t for t in _imports(path) if t in modules}
        # Importing keel.a.b runs keel.a's __init__ first.
        graph[name] = targets | {t.rsplit(".", 1)[0] for t in targets if "." in t[5:]}
        graph[name].discard(name)
    return graph


def _family(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "keel"


def _reach(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module reachable from ``start``, each with the module that imported it."""
    seen, stack = {start: ""}, [start]
    while stack:
        here = stack.pop()
        for there in graph.get(here, ()):
            if there not in seen:
                seen[there] = here
                stack.append(there)
    return seen


def _chain(seen: dict[str, str], end: str) -> str:
    path = [end]
    while seen[path[-1]]:
        path.append(seen[path[-1]])
    return " -> ".join(reversed(path))


GRAPH = _graph()


def test_the_graph_is_read_from_the_source():
    # The reader itself could fail silently: it must see edges known to exist.
    assert "keel.checks.drift" in GRAPH["keel.compare"]
    assert "keel.store.logs" in GRAPH["keel.monitor.run"]
    # Imports only made for type checkers are not edges.
    assert "keel.store" not in GRAPH["keel"]


@pytest.mark.parametrize("family", LOWER)
def test_the_checks_and_the_math_never_reach_the_store_or_anything_above_them(family):
    offences = []
    for module in sorted(m for m in GRAPH if _family(m) == family):
        seen = _reach(GRAPH, module)
        offences += [_chain(seen, m) for m in seen if _family(m) in UPPER]
    assert not offences, "imports that point up:\n" + "\n".join(offences[:10])


def test_nothing_below_the_command_line_imports_it():
    offences = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if _family(module) != "cli"
        for target in targets
        if _family(target) == "cli"
    ]
    assert not offences


def test_serving_never_reaches_monitoring_or_the_checks():
    # Monitoring never slows serving: the gateway imports neither the monitor nor the suite.
    offences = []
    for module in sorted(m for m in GRAPH if _family(m) == "serve"):
        seen = _reach(GRAPH, module)
        offences += [_chain(seen, m) for m in seen if _family(m) in ("monitor", "checks")]
    assert not offences, "\n".join(offences[:10])


def test_no_two_families_import_each_other():
    families: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        for target in targets:
            if _family(target) not in (_family(module), "keel"):
                families.setdefault(_family(module), set()).add(_family(target))
    circles = sorted(
        f"{a} <-> {b}" for a in families for b in families[a] if a < b and a in families.get(b, ())
    )
    assert not circles


def test_a_planted_upward_import_is_caught_with_its_chain():
    graph = {**GRAPH, "keel.stats.ks": GRAPH["keel.stats.ks"] | {"keel.monitor.run"}}
    seen = _reach(graph, "keel.stats.ks")
    assert _chain(seen, "keel.monitor.run") == "keel.stats.ks -> keel.monitor.run"
    assert any(_family(m) == "store" for m in seen)


def test_nothing_outside_the_store_opens_its_transactions_or_imports_sqlalchemy():
    # The store has one public face (docs/architecture.md): its private transactions and
    # connections, and SQLAlchemy itself, are used inside keel.store only.
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if _family(_module_name(path)) == "store":
            continue
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("_transaction", "_connection"):
                offences.append(f"{where}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                offences += [
                    f"{where}:{node.lineno}: import {name}"
                    for name in names
                    if name == "sqlalchemy" or name.startswith("sqlalchemy.")
                ]
    assert not offences, "outside keel.store:\n" + "\n".join(offences)
