"""The ASGI application: GraphQL at `/graphql`, legacy REST under `/api`, health probes.

Run with `uvicorn main:create_app --factory`; building the app reads settings, so nothing
happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from cross_web import AsyncHTTPRequestAdapter
from cross_web import HTTPException as GraphQLHTTPError
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from pymongo.monitoring import CommandListener
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from core.config import Settings, get_settings
from core.db import create_client, init_database
from core.requests import RequestIds, configure_logging
from resolvers import health
from resolvers.context import get_context
from resolvers.ide import asset_url, dev_token_for, mount_ide_assets, render_graphiql
from resolvers.limits import BodySizeLimit, graphql_error_response
from resolvers.persisted import PersistedQueries
from resolvers.rest import campaigns as rest_campaigns
from resolvers.rest import contacts as rest_contacts
from resolvers.rest.envelope import install_error_handlers
from schema import schema
from services import idempotency

logger = logging.getLogger("campaigns")


class IdeGraphQLRouter(GraphQLRouter[object, None]):
    """Serves a self-hosted GraphiQL (the stock page loads scripts from a public CDN) and
    answers 400, not 500, to bodies that are not JSON objects."""

    persisted = PersistedQueries(1000)
    settings: Settings

    async def run(  # type: ignore[override]  # one body for both of the base's overloads
        self, request: Request | WebSocket, context: object = UNSET, root_value: None = UNSET
    ) -> Response | WebSocket:
        # Strawberry answers its own refusals (bad JSON, wrong content type, too many
        # operations, a mutation over GET) in plain text; GraphQL clients read `errors`.
        try:
            return await super().run(request, context=context, root_value=root_value)
        except GraphQLHTTPError as exc:
            if exc.reason == "mutations are not allowed when using GET":
                # GraphQL over HTTP: 405, and say which method to use.
                message = "Mutations are not run over GET; send them with POST"
                return graphql_error_response(405, message, headers={"Allow": "POST"})
            return graphql_error_response(exc.status_code, exc.reason)

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # A GET with only `extensions` is a persisted query (Apollo sends `Accept: */*`), not a
        # person opening the IDE.
        extensions = request.query_params.get("extensions")
        return extensions is None and super().should_render_graphql_ide(request)

    def decode_json(self, data: str | bytes) -> object:
        # Strawberry answers 400 to JSONDecodeError only; fold the other ways JSON can fail
        # (invalid UTF-8, integers past Python's digit limit, absurd nesting) into it.
        try:
            return json.loads(data)
        except json.JSONDecodeError:
            raise
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise json.JSONDecodeError(str(exc), "", 0) from None

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        # A body that is valid JSON but not an object (`null`, `7`) makes Strawberry call
        # `.get` on it; answer that as the client error it is.
        try:
            return await super().parse_http_body(request)
        except (AttributeError, TypeError) as exc:
            raise GraphQLHTTPError(400, "The request body must be a JSON object") from exc

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: object,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # Every operation, batched or not, passes here: persisted queries are filled in first.
        refusal = self.persisted.resolve(request_data)
        if refusal is not None:
            return ExecutionResult(data=None, errors=[refusal])
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        token = dev_token_for(request, self.settings)
        # The page may carry a token: never let a shared cache keep it.
        headers = {"Cache-Control": "no-store"} if token else None
        page = render_graphiql(str(request.url.path), dev_token=token)
        return HTMLResponse(page, headers=headers)


def create_app(
    settings: Settings | None = None, *, event_listeners: Sequence[CommandListener] = ()
) -> FastAPI:
    """Builds the app; the database connection opens in the lifespan, not at import.

    `event_listeners` are PyMongo monitoring listeners, for tests that count commands.
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = create_client(settings, event_listeners=event_listeners)
        app.state.mongo_client = client
        try:
            await init_database(client, settings.mongodb_db)
            # Start-up leaves ~100k long-lived objects (schema, models); freezing them keeps
            # full collections from walking them on every large request (~0.1 s each).
            gc.collect()
            gc.freeze()
            purge = asyncio.create_task(
                idempotency.purge_forever(
                    retention=timedelta(seconds=settings.idempotency_retention_seconds),
                    every=timedelta(seconds=settings.idempotency_purge_every_seconds),
                )
            )
            try:
                yield
            finally:
                purge.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purge
        finally:
            await client.close()

    app = FastAPI(
        title="Campaign service",
        version="0.1.0",
        description="SMS campaigns for sales teams. GraphQL at /graphql; legacy REST under /api.",
        lifespan=lifespan,
        docs_url=None,  # served below from local assets; FastAPI's default page uses a CDN
        redoc_url=None,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    # Apollo's BatchHttpLink sends a JSON array of operations; each gets its own answer, in
    # order. The schema is shared, so the last app built sets the limit (one per process).
    schema.config.batching_config = {"max_operations": settings.graphql_max_batch}
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(rest_campaigns.router)
    app.include_router(rest_contacts.router)
    graphql = IdeGraphQLRouter(schema, context_getter=get_context, multipart_uploads_enabled=False)
    graphql.persisted = PersistedQueries(settings.graphql_persisted_queries)
    graphql.settings = settings
    app.include_router(graphql, prefix="/graphql", include_in_schema=False)
    mount_ide_assets(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIds)  # outermost: even a 413 carries the id

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - REST",
            swagger_js_url=asset_url("swagger-ui-bundle.js"),
            swagger_css_url=asset_url("swagger-ui.css"),
            swagger_favicon_url="data:,",
        )

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return HTMLResponse(
            '<p>Campaign service: <a href="/graphql">GraphQL IDE</a>, '
            '<a href="/docs">REST docs</a></p>'
        )

    return app
