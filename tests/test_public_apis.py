"""The code uses Strawberry and graphql-core through their public names only: a private or
unexported name can change in any release without notice.

Checked in every Python file of the project: no import of an underscore module or name from a
dependency; from Strawberry and graphql-core, no import of a name its module does not export
(`__all__`); and no read of the private attributes code has reached for before
(the graphql-core schema behind Strawberry's). The project's own private names stay free to use.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("models", "core", "services", "schema", "resolvers", "scripts", "bench", "tests")
OWN = frozenset({*FOLDERS, "main", "worker"})
CHECKED = frozenset({"strawberry", "graphql"})
"""Dependencies whose modules' `__all__` says what they export."""
HOOK_TYPES = frozenset(
    {
        ("strawberry.exceptions", "ConnectionRejectionError"),
        ("strawberry.http.base", "BaseRequestProtocol"),
        ("strawberry.types.unset", "UnsetType"),
    }
)
"""Names in the signatures of Strawberry's documented hooks (`on_ws_connect`,
`should_render_graphql_ide`) that their modules leave out of `__all__`."""
INTERNAL_MODULES = ("beanie.odm.utils",)
"""Beanie's own helpers (parsing, dumping): not part of its documented API."""
PRIVATE_ATTRIBUTES = frozenset({"_schema", "_raw_info", "_scalar_definition", "_type_definition"})


def _files() -> list[Path]:
    found = [ROOT / "main.py", ROOT / "worker.py"]
    for folder in FOLDERS:
        found.extend(sorted((ROOT / folder).rglob("*.py")))
    return [f for f in found if f.exists()]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _unexported(module: str, name: str) -> bool:
    if module.split(".")[0] not in CHECKED or (module, name) in HOOK_TYPES:
        return False
    exported = getattr(importlib.import_module(module), "__all__", None)
    if exported is None or name in exported:
        return False
    try:  # `from package import module` names a module, not an export
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return True
    return False


def _findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(ROOT)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            module = node.module
            if module.split(".")[0] in OWN:
                continue
            if any(_private(part) for part in module.split(".")) or module.startswith(
                INTERNAL_MODULES
            ):
                found.append(f"{where}:{node.lineno} imports from {module}")
            found.extend(
                f"{where}:{node.lineno} imports {module}.{alias.name}"
                for alias in node.names
                if _private(alias.name) or _unexported(module, alias.name)
            )
        elif isinstance(node, ast.Import):
            found.extend(
                f"{where}:{node.lineno} imports {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] not in OWN
                and any(_private(part) for part in alias.name.split("."))
            )
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            found.append(f"{where}:{node.lineno} reads .{node.attr}")
    return found


def test_no_private_name_of_a_dependency_is_used() -> None:
    found = [finding for path in _files() for finding in _findings(path)]
    assert found == []
