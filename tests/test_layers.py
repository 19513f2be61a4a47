"""The house keeps its shape: layers import only downward, domains only in one order, and no
module imports itself back through others.

    models ← core ← services ← schema ← resolvers ← main, worker

Inside `services/`, the shared modules (`inputs`, `dates`) and `storage/` come first, then the
domains in the order they build on each other. Every import counts, including those inside
functions and under `TYPE_CHECKING`: an import moved into a function still ties the two modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["models", "core", "services", "schema", "resolvers", "main", "worker"]
RANK = {"models": 0, "core": 1, "services": 2, "schema": 3, "resolvers": 4, "main": 5, "worker": 5}
DOMAINS = [
    "inputs",
    "dates",
    "storage",
    "contacts",
    "organizations",
    "campaigns",
    "sending",
    "conversations",
]
"""Each may import those before it (and itself), never those after."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in LAYERS:
        single = ROOT / f"{top}.py"
        if single.exists():
            found[top] = single
            continue
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports (a `from package import module` names the module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in MODULES else base)
    return {t for t in targets if t in MODULES}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _domain(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


def test_layers_import_only_downward() -> None:
    upward = [
        f"{source} imports {target}"
        for source, targets in GRAPH.items()
        for target in targets
        if RANK[target.split(".")[0]] > RANK[source.split(".")[0]]
    ]
    assert upward == []


def test_service_domains_import_in_one_order() -> None:
    order = {d: i for i, d in enumerate(DOMAINS)}
    unknown = sorted({d for m in GRAPH if (d := _domain(m)) is not None and d not in order})
    assert unknown == [], "add new service domains to DOMAINS, in the order they build on"
    backward = [
        f"{source} imports {target}"
        for source, targets in GRAPH.items()
        for target in targets
        if (a := _domain(source)) is not None
        and (b := _domain(target)) is not None
        and order[b] > order[a]
    ]
    assert backward == []


def test_no_module_imports_itself_back() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if target == module or target.startswith(module + "."):
                continue  # a package importing its own modules
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert cycles == []


def test_the_checks_see_the_whole_house() -> None:
    """A rename that hid modules from these checks would make them pass vacuously."""
    assert len(GRAPH) > 60
    assert "services.sending.dispatcher" in GRAPH["main"] | GRAPH["worker"]
    assert any(t.startswith("services.storage") for t in GRAPH["services.campaigns.creation"])
