"""Browser pages on other sites: CORS for the origins on the allow-list, refusal for the rest.

An Apollo app usually lives on its own origin (`app.example.com` calling `api.example.com`),
so the browser asks first (a preflight) and the answer must name the headers Apollo sends.
Which sites may call is the deployment's choice (`CORS_ALLOWED_ORIGINS`); in development any
local port may, so a frontend dev server works out of the box. A request that carries the
`Origin` of a site not on the list is refused before anything runs: the browser would hide
the answer from the page, but the operation would still have run (a mutation, say) without
this guard. Tokens travel in `Authorization`, never in cookies, so no credentials mode is
offered, and a wildcard origin is refused at start-up.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from core.config import Settings
from core.errors import FieldError
from resolvers.limits import graphql_error_response
from resolvers.rest.envelope import error_response

LOCAL_DEV_ORIGIN = r"http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?"
"""Any port of this machine over plain HTTP: how frontend dev servers run."""

REQUEST_HEADERS = [
    "authorization",
    "content-type",
    "apollographql-client-name",
    "apollographql-client-version",
    "apollo-require-preflight",
    "x-request-id",
    "idempotency-key",
]
"""What Apollo clients and legacy REST callers send."""

EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy"]
"""What a page's script may read from an answer."""

GUARDED = ("/graphql", "/api/")


def origin_allowed(origin: str, settings: Settings) -> bool:
    """Whether a page served from `origin` may call this API."""
    if origin in settings.cors_allowed_origins:
        return True
    return (
        settings.environment == "development" and re.fullmatch(LOCAL_DEV_ORIGIN, origin) is not None
    )


class OriginGuard:
    """Refuses `/graphql` and `/api/*` requests (and websocket handshakes) sent by a page of a
    site not on the allow-list; same-site pages (the IDE, `/docs`) and clients that send no
    `Origin` (curl, servers, mobile apps) pass."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._refused(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # 403 at the handshake
            return
        message = "This API does not accept requests from pages of that origin"
        if str(scope.get("path", "")).startswith("/graphql"):
            response = graphql_error_response(403, message, code="ORIGIN_NOT_ALLOWED")
        else:
            response = error_response(
                403, message, [FieldError(("Origin",), "ORIGIN_NOT_ALLOWED", message)]
            )
        await response(scope, receive, send)

    def _refused(self, scope: Scope) -> bool:
        path = str(scope.get("path", ""))
        if not path.startswith(GUARDED) and path != "/graphql":
            return False
        headers = dict(scope["headers"])
        raw = headers.get(b"origin")
        if raw is None:
            return False
        origin = raw.decode("latin-1").rstrip("/")
        host = headers.get(b"host", b"").decode("latin-1")
        if host and origin.partition("://")[2] == host:
            return False  # the same site (behind a TLS proxy the scheme may differ)
        return not origin_allowed(origin, self.settings)


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Adds the guard, then CORS around it (so preflights are answered before the guard)."""
    app.add_middleware(OriginGuard, settings=settings)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_allowed_origins,
        allow_origin_regex=LOCAL_DEV_ORIGIN if settings.environment == "development" else None,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=600,
    )
