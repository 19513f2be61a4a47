"""How failures leave the GraphQL endpoint: stable `extensions.code`, no internals."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from core.db import unavailable
from core.errors import ServiceError

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
            return _with(error, original.message, extensions)
        if isinstance(original, GraphQLError):
            extensions.setdefault("code", "BAD_USER_INPUT")
            return _with(error, error.message, extensions)
        logger.error("unhandled error in %s", error.path, exc_info=original)
        return GraphQLError(
            INTERNAL_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR"},
        )


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
