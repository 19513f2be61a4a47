"""Builds the per-request GraphQL context with the same auth as REST."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from core.config import Settings
from core.errors import AuthenticationError
from resolvers.deps import authorization_header, verified_principal
from schema.context import Context


async def get_context(request: HTTPConnection) -> Context:
    """Builds the context; an anonymous request may still load the IDE and introspect.

    Reads the settings off the app rather than through a sub-dependency: every dependency
    level is solved again on every request."""
    settings: Settings = request.app.state.settings
    try:
        if authorization_header(request) is None:
            return Context(settings, None, None)
        return Context(settings, verified_principal(request, settings), None)
    except AuthenticationError as exc:
        return Context(settings, None, exc)
