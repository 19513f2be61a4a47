"""The one place service errors become a mutation's `userErrors`.

A mutation resolver is decorated with `@user_errors`: a refusal the caller can act on
(`InvalidInput`, `NotFound`, `Conflict` and their kinds) comes back as the payload with
`userErrors` and nothing else; anything else (no token, the database down, a bug) stays a
top-level error with `extensions.code`. Paths are spelled as the mutation's arguments: a path
that starts with an argument name is kept, any other is inside `input`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, get_type_hints

from core.errors import Conflict, FieldError, InvalidInput, NotFound, ServiceError
from schema.errors import UserError

USER_ERRORS = (InvalidInput, NotFound, Conflict)
"""Refusals a mutation answers in its payload; the others are top-level errors."""

_GRAPHQL_NAMES = {"_id": "id"}

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Answers the resolver's expected refusals as its payload type with `userErrors`."""
    payload = get_type_hints(resolver)["return"]
    arguments = set(inspect.signature(resolver).parameters) - {"self", "info", "root"}

    @functools.wraps(resolver)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await resolver(*args, **kwargs)
        except USER_ERRORS as exc:
            result: R = payload(user_errors=to_user_errors(exc, arguments))
            return result

    return wrapper


def to_user_errors(exc: ServiceError, arguments: set[str]) -> list[UserError]:
    """Returns the error's field errors as `UserError`s with GraphQL argument paths."""
    errors = exc.errors or [FieldError((), exc.code, exc.message)]
    out = []
    for error in errors:
        path = [str(_GRAPHQL_NAMES.get(str(p), p)) for p in error.path]
        if "input" in arguments and (not path or path[0] not in arguments):
            path = ["input", *path]
        problem = UserError(field=path, code=error.code, message=error.message)  # type: ignore[call-arg]
        out.append(problem)
    return out
