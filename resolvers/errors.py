"""How failures leave the GraphQL endpoint: stable `extensions.code`, no internals."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLError,
    GraphQLInputType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    VariableDefinitionNode,
    build_schema,
    get_nullable_type,
    is_enum_type,
    is_input_object_type,
    is_input_type,
    is_list_type,
    is_non_null_type,
    is_required_input_field,
    is_specified_scalar_type,
    type_from_ast,
    validate_input_value,
)
from graphql.pyutils import is_iterable
from strawberry.extensions import SchemaExtension
from strawberry.schema import BaseSchema

from core.db import unavailable
from core.errors import ServiceError
from core.requests import request_id
from schema.campaigns import ENUM_CODES

logger = logging.getLogger(__name__)

INTERNAL_MESSAGE = "Internal server error"


class ErrorCodes(SchemaExtension):
    """Adds `extensions.code` to every error and masks unexpected ones.

    Validation and parse errors become `GRAPHQL_VALIDATION_FAILED` / `BAD_USER_INPUT`; a
    `ServiceError` keeps its message and code; anything else is logged with its traceback and
    answered as `INTERNAL_SERVER_ERROR` with a generic message.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        context = self.execution_context
        variables = VariableErrors(context.schema, context.variables)
        result.errors = [self._shape(error, variables) for error in result.errors]

    def _shape(self, error: GraphQLError, variables: VariableErrors) -> GraphQLError:
        original = error.original_error
        extensions = dict(error.extensions or {})
        if original is None:
            extensions.setdefault("code", "GRAPHQL_VALIDATION_FAILED")
            return _with(error, error.message, extensions)
        original = unavailable(original) or original
        if isinstance(original, ServiceError):
            extensions["code"] = original.code
            if original.errors:  # a query's bad argument: name it as payloads do
                extensions["userErrors"] = [
                    {"field": [str(p) for p in e.path], "code": e.code, "message": e.message}
                    for e in original.errors
                ]
            return _with(error, original.message, extensions)
        if isinstance(original, GraphQLError):
            extensions.setdefault("code", "BAD_USER_INPUT")
            if (found := variables.explain(error)) is not None:
                extensions["userErrors"] = [found]
            return _with(error, error.message, extensions)
        logger.error("unhandled error in %s", error.path, exc_info=original)
        return GraphQLError(
            f"{INTERNAL_MESSAGE}; quote request id {request_id()}",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id()},
        )


SCALAR_CODES = {"DateTime": "INVALID_DATE"}
"""The code of a value these scalars refuse (other scalars' refusals are `INVALID_TYPE`)."""
REQUIRED_MESSAGE = "Field is required"


@dataclass(frozen=True)
class InputProblem:
    """One refusal of a variable's value: where in the value, its code, graphql-core's words."""

    path: tuple[str, ...]
    code: str
    message: str


class VariableErrors:
    """Explains graphql-core's refusals of variables as `userErrors`-shaped entries.

    GraphQL checks variables against the schema before any resolver runs, so these refusals
    never reach a payload. Giving them the payload's `{field, code, message}` shape (under
    `extensions.userErrors`) lets a client handle a missing `name` the same way whether the
    type system or the service caught it, and lets the parity test compare them with REST.

    graphql-core's error names the variable (its node is the variable's definition) but gives
    the place inside the value only in its wording; so the value is checked again here, with
    graphql-core's own `validate_input_value` over the published types, which reports each
    problem with its path, in the order graphql-core reported them. The code comes from the
    type found at that path.
    """

    def __init__(self, schema: BaseSchema, variables: Mapping[str, object] | None) -> None:
        self.schema = schema
        self.variables = variables or {}
        self.problems: dict[str, list[InputProblem]] = {}
        self.seen: Counter[str] = Counter()

    def explain(self, error: GraphQLError) -> dict[str, object] | None:
        definition = error.nodes[0] if error.nodes else None
        reason = error.original_error
        if not isinstance(definition, VariableDefinitionNode) or not isinstance(
            reason, GraphQLError
        ):
            return None
        name = definition.variable.name.value
        problems = self.problems.get(name)
        if problems is None:
            problems = self.problems[name] = self._check(name, definition)
        index = self.seen[name]
        self.seen[name] += 1
        if index < len(problems) and problems[index].message == reason.message:
            found = problems[index]
            message = REQUIRED_MESSAGE if found.code == "REQUIRED" else reason.message
            return {"field": [name, *found.path], "code": found.code, "message": message}
        return {"field": [name], "code": "INVALID_TYPE", "message": reason.message}

    def _check(self, name: str, definition: VariableDefinitionNode) -> list[InputProblem]:
        variable_type = type_from_ast(published_types(self.schema), definition.type)
        if not is_input_type(variable_type):
            return []
        value = self.variables.get(name, Undefined)
        problems: list[InputProblem] = []
        at_objects: Counter[tuple[str | int, ...]] = Counter()

        def on_error(error: GraphQLError, path: list[str | int]) -> None:
            problems.append(_problem(variable_type, value, path, error.message, at_objects))

        try:
            validate_input_value(value, variable_type, on_error)
        except RecursionError:  # graphql-core refused it as too deep before any of this
            return []
        return problems


PUBLISHED: WeakKeyDictionary[BaseSchema, GraphQLSchema] = WeakKeyDictionary()


def published_types(schema: BaseSchema) -> GraphQLSchema:
    """The schema's types as published (its SDL), with each custom scalar parsing input as the
    schema does, so values are refused here exactly as when the request ran. Built once per
    schema, at its first refused variable."""
    types = PUBLISHED.get(schema)
    if types is None:
        types = PUBLISHED[schema] = _published(schema)
    return types


def _published(schema: BaseSchema) -> GraphQLSchema:
    types = build_schema(schema.as_str())
    for name, named in types.type_map.items():
        if isinstance(named, GraphQLScalarType) and not is_specified_scalar_type(named):
            parse = getattr(schema.get_type_by_name(name), "parse_value", None)
            if parse is not None:
                named.coerce_input_value = parse
    return types


def _problem(
    variable_type: GraphQLInputType,
    value: object,
    path: list[str | int],
    message: str,
    at_objects: Counter[tuple[str | int, ...]],
) -> InputProblem:
    """The code of one problem graphql-core reported at `path`, from the type and the value
    found there."""
    type_, here = _locate(variable_type, value, path)
    where = tuple(str(step) for step in path)
    if here is None or here is Undefined:
        code = "REQUIRED" if is_non_null_type(type_) else "INVALID_TYPE"
        return InputProblem(where, code, message)
    named = get_nullable_type(type_)
    if is_input_object_type(named):
        if not isinstance(here, dict):
            return InputProblem(where, "INVALID_TYPE", message)
        # An object's own problems come in graphql-core's order: its missing required fields
        # (in the type's order), then its unknown fields (in the value's order).
        issues = [
            ("REQUIRED", field)
            for field, definition in named.fields.items()
            if here.get(field, Undefined) is Undefined and is_required_input_field(definition)
        ]
        issues += [("UNKNOWN_FIELD", key) for key in here if key not in named.fields]
        index = at_objects[tuple(path)]
        at_objects[tuple(path)] += 1
        if index < len(issues):
            code, field = issues[index]
            return InputProblem((*where, field), code, message)
        return InputProblem(where, "INVALID_TYPE", message)
    if is_enum_type(named) and isinstance(here, str):  # a name, but not one of the enum's
        return InputProblem(where, ENUM_CODES.get(named.name, "INVALID_CHOICE"), message)
    if isinstance(named, GraphQLScalarType):
        return InputProblem(where, SCALAR_CODES.get(named.name, "INVALID_TYPE"), message)
    return InputProblem(where, "INVALID_TYPE", message)


def _locate(
    type_: GraphQLInputType, value: object, path: list[str | int]
) -> tuple[GraphQLInputType, object]:
    """The type and the value at `path`, walked as graphql-core walks them: a list type
    takes a single value as a list of one (the path then does not step into it)."""
    steps = iter(path)
    step: str | int | None = next(steps, None)
    while True:
        if value is None or value is Undefined:
            return type_, value
        named = get_nullable_type(type_)
        if is_list_type(named):
            if not is_iterable(value):
                type_ = named.of_type
                continue
            if step is None:
                return type_, value
            type_, value = named.of_type, list(value)[int(step)]
        elif is_input_object_type(named) and step is not None and isinstance(value, dict):
            type_, value = named.fields[str(step)].type, value.get(str(step), Undefined)
        else:
            return type_, value
        step = next(steps, None)


def _with(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=extensions,
    )
