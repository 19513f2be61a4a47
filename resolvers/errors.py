"""How failures leave the GraphQL endpoint: stable `extensions.code`, no internals."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

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
        result.errors = [self._shape(error) for error in result.errors]

    def _shape(self, error: GraphQLError) -> GraphQLError:
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
            if (found := variable_error(error.message, original.message)) is not None:
                extensions["userErrors"] = [found]
            return _with(error, error.message, extensions)
        logger.error("unhandled error in %s", error.path, exc_info=original)
        return GraphQLError(
            f"{INTERNAL_MESSAGE}; quote request id {request_id()}",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id()},
        )


_VARIABLE = re.compile(r"^Variable '\$(?P<name>\w+)' (?:has invalid value(?: at (?P<at>\S+))?:|)")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")
_MISSING_FIELD = re.compile(r"to include required field '(\w+)'")
_UNKNOWN_FIELD = re.compile(r"not to include unknown field '(\w+)'")
_ENUM = re.compile(r"does not exist in '(\w+)' enum")


def variable_error(message: str, reason: str) -> dict[str, object] | None:
    """Reads graphql-core's refusal of a variable into a `userErrors`-shaped entry.

    GraphQL checks variables against the schema before any resolver runs, so these refusals
    never reach a payload. Giving them the payload's `{field, code, message}` shape (under
    `extensions.userErrors`) lets a client handle a missing `name` the same way whether the
    type system or the service caught it, and lets the parity test compare them with REST.
    """
    match = _VARIABLE.match(message)
    if match is None:
        return None
    path: list[str] = [match["name"]]
    for step in _STEP.finditer(match["at"] or ""):
        path.append(step[1] or step[2])
    if missing := _MISSING_FIELD.search(reason):
        return {"field": [*path, missing[1]], "code": "REQUIRED", "message": "Field is required"}
    if unknown := _UNKNOWN_FIELD.search(reason):
        return {"field": [*path, unknown[1]], "code": "UNKNOWN_FIELD", "message": reason}
    if "not to be None" in reason or "to be provided" in reason:
        return {"field": path, "code": "REQUIRED", "message": "Field is required"}
    if "cannot represent a DateTime" in reason:
        return {"field": path, "code": "INVALID_DATE", "message": reason}
    if enum := _ENUM.search(reason):
        return {"field": path, "code": ENUM_CODES.get(enum[1], "INVALID_CHOICE"), "message": reason}
    return {"field": path, "code": "INVALID_TYPE", "message": reason}


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
