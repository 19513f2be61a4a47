"""The executor's short path for plain fields answers exactly as graphql-core's full path.

Each case runs one query on one small schema twice, once through Strawberry's own execution
context and once through `PlainFieldsExecutor`, and compares the whole answers (data, error
messages, paths, locations). The cases are the ones the short path hands back: nulls in
non-null fields, values a scalar or enum refuses, attributes that raise, awaitables, and
resolve middleware.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.execution import PlainFieldsExecutor, _plans
from schema.root import _measure, _validate
from schema.root import schema as app_schema


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


@strawberry.type
class Item:
    id: strawberry.ID
    count: int
    colour: Colour
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
}


async def _later() -> str:
    await asyncio.sleep(0)
    return "from an awaitable"


CASES: dict[str, Any] = {
    "plain": None,
    "null in a non-null leaf": Broken("count", None),
    "null in a non-null object": Broken("inner", None),
    "a value the scalar refuses": Broken("count", "three"),
    "a value the enum refuses": Broken("colour", "green"),
    "an attribute that raises": Broken("count", RuntimeError("boom")),
    "an exception as a leaf's value": Broken("note", lambda: ValueError("as a value")),
    "an exception as an object's value": Broken("inner", lambda: ValueError("as an object")),
    "an awaitable as the value": Broken("note", _later),
    "an int past GraphQL's range": Broken("count", 2**40),
    "a non-null leaf failing in a nullable object": Broken(
        "optional_inner",
        lambda: Inner(label=None, maybe=None),  # type: ignore[arg-type]
    ),
    "a non-null leaf failing in a non-null object": Broken(
        "inner",
        lambda: Inner(label=None, maybe=None),  # type: ignore[arg-type]
    ),
    "an awaited field failing in a nullable object": Broken(
        "optional_inner", lambda: Inner(label="boom", maybe=None)
    ),
    "an awaited field failing in a non-null object": Broken(
        "inner", lambda: Inner(label="boom", maybe=None)
    ),
}
QUERY = """{
  items {
    id count colour note tags doubled(by: 3)
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


def root(case: Any) -> Any:
    item = Item(**GOOD)
    return type("Root", (), {"items": [item, case if case is not None else item, item]})()


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
    value = root(CASES[case])
    full = await build(StrawberryGraphQLCoreExecutionContext).execute(QUERY, root_value=value)
    short = await build(PlainFieldsExecutor).execute(QUERY, root_value=value)
    assert answer(short) == answer(full)
    if case == "an awaitable as the value":
        assert full.data is not None and full.data["items"][1]["note"] == "from an awaitable"
    assert full.data is not None and full.data["items"][0]["count"] == 3
    if case not in ("plain", "an awaitable as the value"):
        # The broken item's own error, not a failure of the whole list.
        assert full.errors and full.errors[0].path[:2] == ["items", 1], full.errors


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
    assert result.errors is None
    # Per item only `tags` (a list), `doubled` (a resolver with an argument) and `inner.later`
    # (a resolver) take the full path; the root's `items` (a list) once.
    assert Counting.full_path == 1 + 3 * 3

    schema = build(PlainFieldsExecutor)
    item_type = schema._schema.type_map["Item"]
    plans = _plans(item_type)
    assert plans["count"] is not None and plans["inner"] is not None
    assert plans["doubled"] is None and plans["tags"] is None


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
    assert short.errors is None
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
