"""How GraphQL fields are executed: graphql-core's executor, with a short path for plain values.

A campaign screen selects ~60 fields, and most of them are read straight off an attribute
(`status`, `contactId`, `stats.sent`, an edge's `node`). For each one graphql-core builds a
resolve info (a 16-field tuple), checks for arguments and completes the value through two levels
of `complete_value`; an attribute read uses none of that. Here such a field is read directly: a
leaf is coerced by its scalar or enum, an object goes straight to its sub-selection (a failing
sub-field is handled at that field as graphql-core does: null there if allowed). A value read
that is anything else (null where null is not allowed, a value the scalar refuses, an exception,
an awaitable) is completed by graphql-core's own completion, so errors keep their exact
messages, paths and locations, and no attribute is read twice. Only Strawberry's basic fields
qualify (no resolver, no field extensions: permission classes are one); fields with arguments,
lists, abstract types, types with `is_type_of`, and every field while a schema extension has a
`resolve` hook (resolve middleware) take the full path.

The hook is Strawberry's documented `execution_context_class`. Measured on the campaign screen
of `bench/graphql_overhead.py`: see the README's performance section.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
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
from graphql.execution.executor import to_nodes
from graphql.pyutils import Path
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


_PLANS: dict[int, dict[str, _Plain | None]] = {}
"""Per object type (by identity; an entry goes when its type is collected), per field name: how
to read the field plainly, or None when it takes graphql-core's path."""


def _plans(parent_type: GraphQLObjectType) -> dict[str, _Plain | None]:
    plans = _PLANS.get(id(parent_type))
    if plans is None:
        plans = {name: _plan(field) for name, field in parent_type.fields.items()}
        _PLANS[id(parent_type)] = plans
        weakref.finalize(parent_type, _PLANS.pop, id(parent_type), None)
    return plans


def _plan(field: GraphQLField) -> _Plain | None:
    definition = field.extensions.get("strawberry-definition")
    if (
        not isinstance(definition, StrawberryField)
        # Strawberry's own rule: no resolver, no field extensions (permission classes are one)
        or not definition.is_basic_field
        or definition.default_resolver is not getattr
        or field.args
    ):
        return None
    read = attrgetter(definition.python_name)  # what Strawberry's basic resolver ends up doing
    inner = get_nullable_type(field.type)
    if is_leaf_type(inner):
        return _Plain(read, field.type, inner, None)
    if is_object_type(inner) and inner.is_type_of is None:
        return _Plain(read, field.type, None, inner)
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
        node = field_details_list[0].node
        plan = _plans(parent_type).get(node.name.value) if self._short_path else None
        if plan is None or node.arguments:
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        try:
            value = plan.read(source)
        except Exception as raw_error:
            self.handle_field_error(raw_error, plan.field_type, field_details_list, path)
            return None
        if value is None and plan.nullable:
            return None
        if value is not None and not isinstance(value, Exception) and not self.is_awaitable(value):
            object_type = plan.object_type
            if object_type is not None:
                # Straight to the sub-selection; a failing non-null sub-field nulls this field
                # if it may be null, or goes on up if it may not.
                return self._guarded(
                    plan,
                    field_details_list,
                    path,
                    lambda: self.collect_and_execute_subfields(
                        object_type, field_details_list, path, value, position_context
                    ),
                )
            assert plan.leaf is not None
            try:
                coerced = plan.leaf.coerce_output_value(value)
            except Exception:
                coerced = None  # graphql-core's completion below raises it, located
            if coerced is not None and coerced is not Undefined:
                return coerced
        return self._complete(parent_type, plan, value, field_details_list, path, position_context)

    def _complete(
        self,
        parent_type: GraphQLObjectType,
        plan: _Plain,
        value: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """graphql-core's completion of a value already read (its `execute_field` after the
        resolver): for nulls where none is allowed, exceptions, awaitables and values a scalar
        refuses, so errors read exactly as they always did and nothing is read twice."""
        field = parent_type.fields[field_details_list[0].node.name.value]
        info = self.build_resolve_info(field, to_nodes(field_details_list), parent_type, path)
        if self.is_awaitable(value):  # completes and handles its own errors
            return self.complete_awaitable_value(
                plan.field_type, field_details_list, info, path, value, position_context
            )
        return self._guarded(
            plan,
            field_details_list,
            path,
            lambda: self.complete_value(
                plan.field_type, field_details_list, info, path, value, position_context
            ),
        )

    def _guarded(
        self,
        plan: _Plain,
        field_details_list: FieldDetailsList,
        path: Path,
        complete: Callable[[], Any],
    ) -> Any:
        """Runs a completion with graphql-core's error handling at this field (the end of its
        `execute_field`): an error nulls the field if it may be null, recorded once, or goes
        on up if it may not; the same for an error that comes when awaited."""
        try:
            completed = complete()
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
