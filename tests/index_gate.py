"""The index gate: every query the app sends, judged against the indexes the models declare.

Its own module so that the gate's test (`tests/test_index_coverage.py`), which runs a small
pytest-xdist session of its own, starts processes that import the models and not the app.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo import IndexModel, monitoring

from models import DOCUMENT_MODELS

ROOT = Path(__file__).resolve().parent.parent


# Queries by shape, and the indexes that serve them
#
# Every query the app sends is recorded with PyMongo's public command monitoring for the whole
# session and judged against the indexes the models declare, with MongoDB's rules for a
# compound index: equality fields first (any order), then the sort fields, then at most one
# range field. A query naming `_id`, or every field of a unique index, by equality is a point
# read. Queries the tests send themselves (to look at what the app stored) are left out, by
# the first project frame on the stack.

HERE = Path(__file__).resolve()
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
    name: str = field(default="", compare=False)


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


def declared_indexes() -> dict[str, list[Index]]:
    """Each collection's indexes as the models declare them (`_id` first), by collection."""
    found: dict[str, list[Index]] = {}
    for model in DOCUMENT_MODELS:
        indexes = [Index(("_id",), unique=True, name="_id_")]
        for declared in getattr(model.Settings, "indexes", None) or []:
            assert isinstance(declared, IndexModel), model
            document = declared.document
            keys = tuple(str(name) for name in document["key"])
            unique = bool(document.get("unique"))
            indexes.append(Index(keys, unique=unique, name=str(document["name"])))
        found[str(model.Settings.name)] = indexes
    return found


def index_serves(shape: Shape, indexes: Sequence[Index]) -> bool:
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

    def dump(self) -> str:
        """The shapes as JSON, for another process to `merge` (a pytest-xdist worker's)."""
        return json.dumps(
            [
                [s.collection, sorted(s.equality), sorted(s.ranges), list(s.sort), s.unsupported, o]
                for s, o in self.shapes.items()
            ]
        )

    def merge(self, dumped: str) -> None:
        for collection, equality, ranges, sort, unsupported, origin in json.loads(dumped):
            shape = Shape(
                collection, frozenset(equality), frozenset(ranges), tuple(sort), unsupported
            )
            self.shapes.setdefault(shape, origin)


def _fields(sort: Any) -> tuple[str, ...]:
    return tuple(str(name) for name in sort or ())


UNTRACED = "(a task of its own: no project frame on its stack)"
"""The origin of a query sent by a cursor a task awaits alone (`asyncio.gather(cursor.to_list(),
...)`): its stack starts in the driver, so it cannot say who decided it. Judged all the same."""


def _app_origin() -> str | None:
    """`file:line` of the innermost project frame past the storage layer (the caller that
    decided the query), `UNTRACED` when no project frame is on the stack, or None when the tests
    themselves sent the command."""
    frame = inspect.currentframe()
    frame = frame.f_back.f_back if frame and frame.f_back else None  # past `started`
    storage: str | None = None
    while frame is not None:
        relative = _project_file(frame.f_code.co_filename)
        if relative is not None:
            if relative.parts[0] in ("tests", "bench"):
                return None  # the test's own query, directly or through the storage layer
            where = f"{relative}:{frame.f_lineno}"
            if relative.parts[:2] != ("services", "storage"):
                return where
            storage = storage or where
        frame = frame.f_back
    return storage or UNTRACED


@functools.cache
def _project_file(filename: str) -> Path | None:
    """The project-relative path of a code file (None: a dependency's, or this module);
    remembered, as every query not yet recorded walks the stack."""
    path = Path(filename)
    if path.is_relative_to(ROOT) and ".venv" not in path.parts and path != HERE:
        return path.relative_to(ROOT)
    return None


# The verdict on a session's queries

INDEX_EXCEPTIONS: dict[str, str] = {}
"""Shapes (as `str(Shape)`) allowed without a serving index, each with the reason."""

RESIDUAL: dict[str, tuple[frozenset[str], str]] = {
    "campaigns": (
        frozenset({"status", "type", "createdBy._id", "name", "scheduleDate", "createdAt"}),
        "A list's optional filters (CampaignFilter, the REST query parameters) combine freely; "
        "the organization's list page or schedule bucket serves the page, and the other "
        "conditions are checked on the campaigns it returns (a status, a creator and a date "
        "range alone have indexes of their own, for the lists' counts).",
    ),
    "contacts": (
        frozenset(
            {"contactStatus", "optedOut", "tags", "process", "firstName", "lastName", "phoneNumber"}
        ),
        "Contacts are listed by numbered page `{organizationId, page}`; filters and search are "
        "checked on each page's contacts (and a segment's on the organization's contacts in id "
        "order).",
    ),
}
"""Fields a query may carry as residual conditions on top of a served shape, per collection."""


def acceptable(shape: Shape, indexes: list[Index]) -> bool:
    """Served as it is, or once the collection's residual filter fields are set aside: all of
    them, or only their ranges (an index on a residual equality, such as a status, then serves
    the rest, the ranges checked on the rows it returns)."""
    if index_serves(shape, indexes):
        return True
    return any(index_serves(core, indexes) for core in _cores(shape))


def _cores(shape: Shape) -> set[Shape]:
    """`shape` without its collection's residual fields (all of them, or only their ranges)."""
    residual = RESIDUAL.get(shape.collection, (frozenset(), ""))[0]
    cores = {
        Shape(
            shape.collection,
            shape.equality - dropped,
            shape.ranges - residual,
            shape.sort,
            shape.unsupported,
        )
        for dropped in (residual, frozenset())
    }
    return cores - {shape}


def serving_indexes(shape: Shape, indexes: Sequence[Index]) -> tuple[int, list[Index]]:
    """Which of `indexes` serve `shape`, and how: 0, as it is (its `_id` index for a read by id);
    1, only once residual fields are set aside (`acceptable`); 2 and none: not at all."""
    if shape.unsupported:
        return 2, []
    if "_id" in shape.equality:
        return 0, [i for i in indexes if i.keys == ("_id",)]
    direct = [i for i in indexes if index_serves(shape, [i])]
    if direct:
        return 0, direct
    residual = [i for i in indexes if any(index_serves(c, [i]) for c in _cores(shape))]
    return (1, residual) if residual else (2, [])


def idle_indexes(
    shapes: Iterable[Shape], declared: Mapping[str, Sequence[Index]] | None = None
) -> list[str]:
    """The declared indexes (`collection.name`) the queries in `shapes` do without: set aside one
    at a time, the last declared first, each whose every query is still served as well by the
    indexes kept (so of two serving the same queries the first declared stays). Unique indexes
    keep a rule, not a read, and are never idle. Every index costs each write of its fields."""
    declared = declared_indexes() if declared is None else declared
    by_collection: dict[str, list[Shape]] = {}
    for shape in shapes:
        by_collection.setdefault(shape.collection, []).append(shape)
    idle: list[str] = []
    for collection, indexes in declared.items():
        mine = by_collection.get(collection, [])
        kept = list(indexes)
        for index in reversed(indexes):
            if index.unique:
                continue
            rest = [i for i in kept if i is not index]
            if all(serving_indexes(s, kept)[0] == serving_indexes(s, rest)[0] for s in mine):
                kept = rest
                idle.append(f"{collection}.{index.name}")
    return sorted(idle)


CALLBACK = (
    "A provider's status callback about a message sent before callback URLs named the "
    "organization (`org`) names only the id the service gave it: one `_id` read on each shard, "
    "from its `_id` index. A callback naming the organization reads `{organizationId, _id}` "
    "(tests/test_twilio.py proves it targeted)."
)
SCATTER_GATHER: dict[str, str] = {
    "contacts: eq=['phoneNumber']": "Single-tenant mode routes a message to the shared sender "
    "by the organization that messaged the phone last: the phone names no organization.",
    "campaigns: eq=['status']": "The dispatcher finds the scheduled and sending campaigns of "
    "every organization (few documents, by the status index).",
    "messages: eq=['status']": "The dispatcher finds the reps' messages held by quiet hours, "
    "of every organization (few documents, by the status index).",
    "recipients: eq=['_id']": CALLBACK,
    "messages: eq=['_id']": CALLBACK,
    "follow_up_sends: eq=['_id']": CALLBACK,
    "contacts: eq=[]": "A migration lists the organizations that hold contacts (one distinct "
    "over the organization's index, once per deployment).",
    "campaigns: eq=[]": "A migration lists the organizations that hold campaigns, likewise.",
    "suppressions: eq=[]": "A migration lists the organizations that hold suppressed numbers, "
    "likewise.",
    "idempotency_keys: eq=[]": "The purge lists the organizations that hold idempotency "
    "records (one distinct over the organization's index per purge), then purges each.",
    "conversation_summaries: eq=[]": "An operator's recount of every organization lists those "
    "that hold conversations (one distinct over the organization's index, run by hand).",
    "tallies: eq=[]": "An operator's recount of every organization lists those that keep "
    "totals, likewise.",
}
"""Shapes (as `str(Shape)`) of queries sent to every shard, each with the reason."""


def shard_keys() -> dict[str, tuple[str, ...] | None]:
    """The declared key of each collection, by collection name."""
    keys: dict[str, tuple[str, ...] | None] = {}
    for model in DOCUMENT_MODELS:
        assert hasattr(model.Settings, "shard_key"), f"{model.__name__}: declare a shard_key"
        key = model.Settings.shard_key
        keys[str(model.Settings.name)] = None if key is None else tuple(key)
    return keys


def untargeted_queries(
    shapes: Mapping[Shape, str], listed: Mapping[str, str] = SCATTER_GATHER
) -> list[str]:
    """The queries on a sharded collection without its key's first field by equality (they
    would go to every shard) that `listed` (the allowed exceptions) does not name."""
    keys = shard_keys()
    return sorted(
        f"{shape}  (from {origin})"
        for shape, origin in shapes.items()
        if (key := keys.get(shape.collection))
        and key[0] not in shape.equality
        and str(shape) not in listed
    )


def index_coverage_problems(shapes: Mapping[Shape, str], *, whole_suite: bool) -> list[str]:
    """What is wrong with these queries (empty: every one is served by a declared index).

    `whole_suite`: the shapes are all the session sent, so a listed exception none of them
    needs is reported as stale (one pytest-xdist worker's share cannot tell).
    """
    indexes = declared_indexes()
    problems = [
        f"a query on {collection}, a collection no model declares"
        for collection in sorted({s.collection for s in shapes if s.collection not in indexes})
    ]
    problems += sorted(
        f"not served by a declared index: {shape}  (from {origin})"
        for shape, origin in shapes.items()
        if shape.collection in indexes
        and str(shape) not in INDEX_EXCEPTIONS
        and not acceptable(shape, indexes[shape.collection])
    )
    problems += [f"sent to every shard: {query}" for query in untargeted_queries(shapes)]
    if whole_suite:
        stale = sorted(set(INDEX_EXCEPTIONS) - {str(s) for s in shapes})
        problems += [f"a listed exception the suite no longer sends: {s}" for s in stale]
    return problems


class IndexCoverageGate:
    """Judges the queries of every pytest-xdist worker once they have all finished.

    Registered in every process: a worker hands the queries it recorded (`QueryRecorder`) to
    the controller when it ends (xdist's `workeroutput`); the controller, when a worker ran the
    `after_all` test (the whole suite was run, not a few files), judges the union with
    `index_coverage_problems` and reports a failed test if one query is not served. Without
    xdist the `after_all` test itself judges the session.
    """

    NODEID = "tests/test_index_coverage.py::every query of every worker is index-served"
    OUTPUT_KEY = "query_shapes"

    def __init__(self, recorder: QueryRecorder, *, controller: bool) -> None:
        self.recorder = recorder
        self.controller = controller
        self.judge = False
        self.workers = 0

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if (output := getattr(session.config, "workeroutput", None)) is not None:
            output[self.OUTPUT_KEY] = self.recorder.dump()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        dumped = getattr(node, "workeroutput", {}).get(self.OUTPUT_KEY)
        if dumped is not None:
            self.recorder.merge(dumped)
            self.workers += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.passed and "after_all" in report.keywords:
            self.judge = True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield  # every worker has finished
        if self.controller and self.judge:
            self.report(session)
        return result

    def report(self, session: pytest.Session) -> None:
        shapes = self.recorder.shapes
        problems = index_coverage_problems(shapes, whole_suite=True)
        if not shapes:
            problems.append("no worker handed over any query: the recording is broken")
        terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None and shapes and (idle := idle_indexes(shapes)):
            # Information, not a failure: a query the suite does not send may still need one.
            terminal.write_line(
                "declared indexes no recorded query needs (each write pays for them): "
                + ", ".join(idle)
            )
        if not problems:
            if terminal is not None:
                terminal.write_line(
                    f"index coverage: {len(shapes)} query shapes of {self.workers} workers, "
                    "each served by a declared index"
                )
            return
        report = pytest.TestReport(
            nodeid=self.NODEID,
            location=("tests/test_index_coverage.py", None, self.NODEID.split("::")[1]),
            keywords={},
            outcome="failed",
            longrepr="\n".join(problems),
            when="call",
        )
        session.config.hook.pytest_runtest_logreport(report=report)
