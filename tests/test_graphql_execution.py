"""The executor's short path for plain fields answers exactly as graphql-core's full path.

Each case runs one query on one small schema twice, once through Strawberry's own execution
context and once through `PlainFieldsExecutor`, and compares the whole answers (data, error
messages, paths, locations). The cases are the ones the short path must hand to graphql-core:
nulls in non-null fields, values a scalar or enum refuses, attributes that raise, awaitables
(also one stored on the object), a value that changes between reads (a field is read once),
failures inside objects read by the short path, permission classes and field extensions on
attribute fields, and resolve middleware.
"""

from __future__ import annotations

import asyncio
import enum
import gc
from collections.abc import Callable
from typing import Any

import pytest
import strawberry
from graphql import GraphQLField, GraphQLObjectType, GraphQLString
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.permission import BasePermission
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.root import _measure, _validate
from resolvers.root import schema as app_schema
from schema.execution import _PLANS, PlainFieldsExecutor, _plans


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Inner:
    label: str
    maybe: str | None

    @strawberry.field
    async def later(self) -> str:
        await asyncio.sleep(0)
        if self.label == "boom":
            raise RuntimeError("later failed")
        return self.label


class Deny(BasePermission):
    message = "denied"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


class Upper(FieldExtension):
    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        return str(next_(source, info, **kwargs)).upper()


@strawberry.type
class Item:
    id: strawberry.ID
    count: int
    colour: Colour
    secret: str | None = strawberry.field(permission_classes=[Deny])
    shout: str = strawberry.field(extensions=[Upper()])
    inner: Inner
    optional_inner: Inner | None
    note: str | None
    tags: list[str]

    @strawberry.field
    def doubled(self, by: int = 2) -> int:
        return self.count * by


class Broken:
    """Looks like an `Item` but breaks a rule on the attribute named in `bad`."""

    def __init__(self, bad: str, value: Any) -> None:
        self.bad, self.value = bad, value

    def __getattr__(self, name: str) -> Any:
        if name == self.bad:
            if isinstance(self.value, Exception):
                raise self.value
            return self.value() if callable(self.value) else self.value
        if name in GOOD:
            return GOOD[name]
        raise AttributeError(name)


GOOD: dict[str, Any] = {
    "id": "i1",
    "count": 3,
    "colour": Colour.BLUE,
    "inner": Inner(label="in", maybe=None),
    "optional_inner": None,
    "note": None,
    "tags": ["a", "b"],
    "secret": "s3cret",
    "shout": "hi",
}


class AnyAttribute:
    """Says it has every attribute, `__await__` included (graphql-core then tries to await it)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def _stored() -> Callable[[], Any]:
    """The same coroutine object on every read, like an attribute holding one."""
    holder: list[Any] = []

    def read() -> Any:
        if not holder:
            holder.append(_later())
        return holder[0]

    return read


def _flipping() -> Callable[[], Any]:
    """None on the first read, 3 afterwards: a field must be read once per request."""
    reads: list[int] = []

    def read() -> Any:
        reads.append(1)
        return None if len(reads) == 1 else 3

    return read


async def _later() -> str:
    await asyncio.sleep(0)
    return "from an awaitable"


CASES: dict[str, Callable[[], Any] | None] = {
    # Each run gets a fresh broken item (some cases remember what was read).
    "plain": None,
    "null in a non-null leaf": lambda: Broken("count", None),
    "null in a non-null object": lambda: Broken("inner", None),
    "a value the scalar refuses": lambda: Broken("count", "three"),
    "a value the enum refuses": lambda: Broken("colour", "green"),
    "an attribute that raises": lambda: Broken("count", RuntimeError("boom")),
    "an exception as a leaf's value": lambda: Broken("note", lambda: ValueError("a value")),
    "an exception as an object's value": lambda: Broken("inner", lambda: ValueError("object")),
    "an awaitable as the value": lambda: Broken("note", _later),
    "an int past GraphQL's range": lambda: Broken("count", 2**40),
    "a coroutine stored on the object": lambda: Broken("note", _stored()),
    "a property null, then not": lambda: Broken("count", _flipping()),
    "an object that answers any attribute": lambda: Broken("note", AnyAttribute),
    "a non-null leaf failing in a nullable object": lambda: Broken(
        "optional_inner",
        lambda: Inner(label=None, maybe=None),  # type: ignore[arg-type]
    ),
    "a non-null leaf failing in a non-null object": lambda: Broken(
        "inner",
        lambda: Inner(label=None, maybe=None),  # type: ignore[arg-type]
    ),
    "an awaited field failing in a nullable object": lambda: Broken(
        "optional_inner", lambda: Inner(label="boom", maybe=None)
    ),
    "an awaited field failing in a non-null object": lambda: Broken(
        "inner", lambda: Inner(label="boom", maybe=None)
    ),
}
NOT_BROKEN = ("plain", "an awaitable as the value", "a coroutine stored on the object")
QUERY = """{
  items {
    id count colour note tags doubled(by: 3) secret shout
    inner { label maybe later }
    optionalInner { label later }
  }
}"""


def build(execution_context_class: type[Any] | None, extensions: list[Any] | None = None) -> Any:
    @strawberry.type
    class Query:
        items: list[Item | None]

    return strawberry.Schema(
        query=Query,
        extensions=extensions or [],
        execution_context_class=execution_context_class,
    )


def root(case: Callable[[], Any] | None) -> Any:
    item = Item(**GOOD)
    return type("Root", (), {"items": [item, case() if case is not None else item, item]})()


def answer(result: Any) -> dict[str, Any]:
    return {
        "data": result.data,
        "errors": [
            {"message": e.message, "path": e.path, "locations": e.locations}
            for e in result.errors or []
        ],
    }


@pytest.mark.parametrize("case", list(CASES))
async def test_short_path_answers_exactly_as_graphql_core(case: str) -> None:
    full = await build(StrawberryGraphQLCoreExecutionContext).execute(
        QUERY, root_value=root(CASES[case])
    )
    short = await build(PlainFieldsExecutor).execute(QUERY, root_value=root(CASES[case]))
    assert answer(short) == answer(full)

    assert full.data is not None
    first = full.data["items"][0]
    assert first["count"] == 3 and first["shout"] == "HI"  # the field extension ran
    assert first["secret"] is None  # the permission class refused
    denied = [e for e in full.errors or [] if e.path[-1] == "secret"]
    survivors = [item for item in full.data["items"] if item is not None]
    assert {e.message for e in denied} == {"denied"} and len(denied) >= len(survivors)
    broken = [e for e in full.errors or [] if e.path[-1] != "secret"]
    if case in NOT_BROKEN:
        assert broken == []
        if case != "plain":
            assert full.data["items"][1]["note"] == "from an awaitable"
    else:
        # The broken item's own error, not a failure of the whole list.
        assert broken and broken[0].path[:2] == ["items", 1], broken


class Counting(StrawberryGraphQLCoreExecutionContext):
    """Counts the fields that reach graphql-core's full path."""

    full_path = 0

    def execute_field(self, *args: Any, **kwargs: Any) -> Any:
        Counting.full_path += 1
        return super().execute_field(*args, **kwargs)


class ShortThenCounting(PlainFieldsExecutor, Counting):
    pass


async def test_plain_fields_skip_the_full_path_and_resolvers_do_not() -> None:
    Counting.full_path = 0
    result = await build(ShortThenCounting).execute(QUERY, root_value=root(None))
    assert result.data is not None and result.data["items"][0]["shout"] == "HI"
    # Per item `tags` (a list), `doubled` (a resolver with an argument), `secret` (a permission
    # class), `shout` (a field extension) and `inner.later` (a resolver) take the full path; the
    # root's `items` (a list) once.
    assert Counting.full_path == 1 + 3 * 5

    schema = build(PlainFieldsExecutor)
    item_type = schema._schema.type_map["Item"]
    plans = _plans(item_type)
    assert plans["count"] is not None and plans["inner"] is not None
    assert plans["doubled"] is None and plans["tags"] is None
    assert plans["secret"] is None and plans["shout"] is None


class Shout(SchemaExtension):
    """Resolve middleware: every string field is upper-cased on its way out."""

    def resolve(
        self, _next: Callable[..., Any], root: Any, info: Any, *args: Any, **kw: Any
    ) -> Any:
        value = _next(root, info, *args, **kw)
        return value.upper() if isinstance(value, str) else value


async def test_resolve_middleware_still_sees_every_field() -> None:
    value = root(None)
    full = await build(StrawberryGraphQLCoreExecutionContext, [Shout]).execute(
        QUERY, root_value=value
    )
    short = await build(PlainFieldsExecutor, [Shout]).execute(QUERY, root_value=value)
    assert short.data == full.data
    assert short.data is not None and short.data["items"][0]["inner"]["label"] == "IN"


async def test_validation_is_found_by_the_query_text() -> None:
    """Each request brings a new string and a cached document; the verdict is found by the
    text, so a repeated query is validated once and a new one is validated."""
    text = "query Probe { __typename " + "a: __typename }"
    first = await app_schema.execute(text)
    before = _validate.cache_info()
    again = await app_schema.execute("".join(text))  # an equal text in a new string object
    after = _validate.cache_info()
    assert first.errors is None and again.errors is None
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)
    assert _measure.cache_info().hits > 0

    wrong = await app_schema.execute("query Probe { __typename nope }")
    assert wrong.errors and "nope" in wrong.errors[0].message
    assert _validate.cache_info().misses == after.misses + 1


def test_plans_go_with_their_type() -> None:
    """Plans are kept per object type; a schema built at run time must not be kept alive, or
    its plans kept after it, through them."""
    kind = GraphQLObjectType("Probe", {"label": GraphQLField(GraphQLString)})
    key = id(kind)
    assert _plans(kind) == {"label": None}  # not a Strawberry field: the full path
    assert key in _PLANS
    del kind
    gc.collect()
    assert key not in _PLANS
