"""How GraphQL fields are executed: graphql-core's executor, with a short path for plain values.

A campaign screen selects ~60 fields, and most of them are read straight off an attribute
(`status`, `contactId`, `stats.sent`, an edge's `node`). For each one graphql-core builds a
resolve info (a 16-field tuple), checks for arguments and completes the value through two levels
of `complete_value`; an attribute read uses none of that. Here such a field is read directly: a
leaf is coerced by its scalar or enum, an object goes straight to its sub-selection (a failing
sub-field is handled at that field as graphql-core does: null there if allowed). Anything
unusual (null where null is not allowed, a value the scalar refuses, an exception, an
awaitable) goes back through graphql-core's own path, which reads it again and words the error
with its exact message, path and location. Fields with resolvers or arguments, lists, abstract
types, types with `is_type_of`, and every field while a schema extension has a `resolve` hook
(resolve middleware) always take the full path.

The hook is Strawberry's documented `execution_context_class`. Measured on the campaign screen
of `bench/graphql_overhead.py`: see the README's performance section.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import isawaitable, iscoroutine
from operator import attrgetter
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLOutputType,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.resolvers import is_default_resolver
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField


class _Plain:
    """How to read one plain field: its attribute reader, its type, and whether null is allowed.
    `leaf` is set for scalars and enums, `object_type` for objects."""

    __slots__ = ("field_type", "leaf", "nullable", "object_type", "read")

    def __init__(
        self,
        read: Callable[[Any], Any],
        field_type: GraphQLOutputType,
        leaf: GraphQLLeafType | None,
        object_type: GraphQLObjectType | None,
    ) -> None:
        self.read = read
        self.field_type = field_type
        self.leaf = leaf
        self.object_type = object_type
        self.nullable = not is_non_null_type(field_type)


_PLANS: dict[int, tuple[GraphQLObjectType, dict[str, _Plain | None]]] = {}
"""Per object type (by identity, kept alive with it: a schema lives as long as the process),
per field name: how to read the field plainly, or None when it takes graphql-core's path."""


def _plans(parent_type: GraphQLObjectType) -> dict[str, _Plain | None]:
    known = _PLANS.get(id(parent_type))
    if known is None or known[0] is not parent_type:
        known = (parent_type, {name: _plan(f) for name, f in parent_type.fields.items()})
        _PLANS[id(parent_type)] = known
    return known[1]


def _plan(field: GraphQLField) -> _Plain | None:
    resolve = field.resolve
    if resolve is None or not is_default_resolver(resolve) or field.args:
        return None
    definition = field.extensions.get("strawberry-definition")
    if isinstance(definition, StrawberryField) and definition.default_resolver is getattr:
        # What Strawberry's basic-field resolver ends up doing, without its two calls.
        resolve = attrgetter(definition.python_name)
    inner = get_nullable_type(field.type)
    if is_leaf_type(inner):
        return _Plain(resolve, field.type, inner, None)
    if is_object_type(inner) and inner.is_type_of is None:
        return _Plain(resolve, field.type, None, inner)
    return None


class PlainFieldsExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's execution, reading plain fields without the per-field machinery."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        middleware = self.middleware_manager
        self._short_path = middleware is None or not middleware.middlewares

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        if self._short_path:
            node = field_details_list[0].node
            plan = _plans(parent_type).get(node.name.value)
            if plan is not None and not node.arguments:
                value = _read(plan, source)
                if value is None:
                    return None
                if value is not Undefined:
                    if plan.object_type is None:
                        return value
                    return self._sub_selection(
                        plan, value, field_details_list, path, position_context
                    )
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _sub_selection(
        self,
        plan: _Plain,
        value: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """An object's sub-selection, with graphql-core's error handling at this field: a
        failing non-null sub-field nulls this field if it may be null (recording the error
        once), or goes on up if it may not."""
        assert plan.object_type is not None
        try:
            completed = self.collect_and_execute_subfields(
                plan.object_type, field_details_list, path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, plan.field_type, field_details_list, path)
            return None
        if self.is_awaitable(completed):
            return self._awaited(completed, plan, field_details_list, path)
        return completed

    async def _awaited(
        self,
        completed: Awaitable[Any],
        plan: _Plain,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, plan.field_type, field_details_list, path)
            return None


_PLAIN_VALUES: set[type] = {str, int, float, bool}
"""Types of values seen to be neither exceptions nor awaitables (enums join on first sight)."""


def _read(plan: _Plain, source: Any) -> Any:
    """The field's value (coerced, for a leaf), None for an allowed null, or `Undefined` when
    graphql-core must decide (and word the error)."""
    try:
        value = plan.read(source)
        if value is None:
            return None if plan.nullable else Undefined
        kind = type(value)
        if kind not in _PLAIN_VALUES:
            if issubclass(kind, BaseException):
                return Undefined
            if isawaitable(value):
                if iscoroutine(value):
                    value.close()  # graphql-core reads the field again and awaits that one
                return Undefined
            _PLAIN_VALUES.add(kind)
        if plan.leaf is None:
            return value
        coerced = plan.leaf.coerce_output_value(value)
    except Exception:
        return Undefined
    return Undefined if coerced is None else coerced
