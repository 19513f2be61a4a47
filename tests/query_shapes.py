"""Every query the app sends, by shape, and whether a declared index serves it on MongoDB.

Recorded with PyMongo's public command monitoring for the whole test session; judged against
the indexes the models declare with MongoDB's rules for a compound index: the equality fields
must be its prefix (in any order), then at most one sort or range field may follow. A query
naming `_id`, or every field of a unique index, by equality is a point read and always served.
Queries the tests send themselves (to look at what the app stored) are not the app's and are
left out, by the first project frame on the stack.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import monitoring

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
RANGE = frozenset({"$gt", "$gte", "$lt", "$lte", "$ne", "$nin", "$exists", "$regex", "$options"})
"""Operators MongoDB answers with an index range (or a scan of one field's keys: a regex)."""
EQUALITY = frozenset({"$eq", "$in"})
COMMANDS = frozenset(
    {"find", "count", "aggregate", "update", "delete", "findAndModify", "distinct"}
)


@dataclass(frozen=True)
class Shape:
    """A query's fields, without values: what decides which index can serve it."""

    collection: str
    equality: frozenset[str]
    ranges: frozenset[str]
    sort: tuple[str, ...]
    unsupported: str = ""
    """An operator this checker does not judge (it is then reported, never passed silently)."""

    def __str__(self) -> str:
        parts = [f"eq={sorted(self.equality)}"]
        if self.ranges:
            parts.append(f"range={sorted(self.ranges)}")
        if self.sort:
            parts.append(f"sort={list(self.sort)}")
        if self.unsupported:
            parts.append(f"unsupported={self.unsupported}")
        return f"{self.collection}: {' '.join(parts)}"


@dataclass(frozen=True)
class Index:
    keys: tuple[str, ...]
    unique: bool


def shapes_of(collection: str, query: Mapping[str, Any], sort: Iterable[str] = ()) -> list[Shape]:
    """The shapes of one filter (one per branch of an `$or`)."""
    equality: set[str] = set()
    ranges: set[str] = set()
    branches: list[list[Mapping[str, Any]]] = []
    unsupported: list[str] = []

    def walk(part: Mapping[str, Any]) -> None:
        for key, value in part.items():
            name = str(key)
            if name == "$and":
                for sub in value:
                    walk(sub)
            elif name == "$or":
                branches.append(list(value))
            elif str(name).startswith("$"):
                unsupported.append(str(name))
            elif isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
                operators = set(value)
                if operators <= EQUALITY:
                    equality.add(name)
                elif operators <= RANGE | EQUALITY:
                    ranges.add(name)
                else:
                    unsupported.append(f"{name}:{sorted(operators - RANGE - EQUALITY)}")
            else:
                equality.add(name)

    walk(query)
    base = Shape(
        collection, frozenset(equality), frozenset(ranges), tuple(sort), ",".join(unsupported)
    )
    if not branches:
        return [base]
    shapes: list[Shape] = []
    for alternatives in branches:
        for branch in alternatives:
            for shape in shapes_of(collection, branch, sort):
                shapes.append(
                    Shape(
                        collection,
                        base.equality | shape.equality,
                        base.ranges | shape.ranges,
                        base.sort,
                        ",".join(filter(None, (base.unsupported, shape.unsupported))),
                    )
                )
    return shapes


def served(shape: Shape, indexes: Sequence[Index]) -> bool:
    """Whether one of `indexes` serves `shape` under MongoDB's rules: equality fields first
    (any order), then the sort fields in order, then at most one range field (the ESR rule)."""
    if shape.unsupported:
        return False
    if "_id" in shape.equality:
        return True
    for index in indexes:
        keys = index.keys
        if index.unique and set(keys) <= shape.equality:
            return True
        width = len(shape.equality)
        if set(keys[:width]) != shape.equality:
            continue
        rest = list(keys[width:])
        sort = [f for f in shape.sort if f not in shape.equality and f != "_id"]
        if rest[: len(sort)] != sort:
            continue
        after = rest[len(sort) :]
        # `_id` after the sort fields is a keyset tie-breaker: a residual over equal keys.
        ranges = shape.ranges - set(sort) - ({"_id"} if "_id" in shape.sort else set())
        if not ranges or (len(ranges) == 1 and after and after[0] in ranges):
            return True
    return False


@dataclass
class QueryRecorder(monitoring.CommandListener):
    """Collects the shapes of the app's queries (register before any client is made)."""

    shapes: dict[Shape, str] = field(default_factory=dict)
    """Each shape, with where in the app it was first sent from."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name not in COMMANDS:
            return
        command = event.command
        collection = str(command.get(name))
        found: list[Shape] = []
        if name == "find":
            found = shapes_of(collection, command.get("filter") or {}, _fields(command.get("sort")))
        elif name in ("count", "distinct"):
            found = shapes_of(collection, command.get("query") or {})
        elif name == "findAndModify":
            found = shapes_of(collection, command.get("query") or {}, _fields(command.get("sort")))
        elif name == "aggregate":
            pipeline = command.get("pipeline") or []
            first = pipeline[0] if pipeline else {}
            sort = next((_fields(s["$sort"]) for s in pipeline[1:2] if "$sort" in s), ())
            found = shapes_of(collection, first.get("$match", {}), sort)
        elif name == "update":
            for statement in command.get("updates") or []:
                found += shapes_of(collection, statement.get("q") or {})
        elif name == "delete":
            for statement in command.get("deletes") or []:
                found += shapes_of(collection, statement.get("q") or {})
        new = [shape for shape in found if shape not in self.shapes]
        if new and (origin := _app_origin()) is not None:
            for shape in new:
                self.shapes[shape] = origin

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _fields(sort: Any) -> tuple[str, ...]:
    return tuple(str(name) for name in sort or ())


def _app_origin() -> str | None:
    """`file:line` of the innermost project frame past the storage layer (the caller that
    decided the query), or None when the tests themselves sent the command."""
    frame = inspect.currentframe()
    storage: str | None = None
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(ROOT) and ".venv" not in path.parts and path != HERE:
            relative = path.relative_to(ROOT)
            if relative.parts[0] in ("tests", "bench"):
                return None  # the test's own query, directly or through the storage layer
            where = f"{relative}:{frame.f_lineno}"
            if relative.parts[:2] != ("services", "storage"):
                return where
            storage = storage or where
        frame = frame.f_back
    return storage
