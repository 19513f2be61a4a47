"""The ASGI application: GraphQL at `/graphql`, legacy REST under `/api`, health probes.

Run with `uvicorn main:create_app --factory`; building the app reads settings, so nothing
happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.monitoring import CommandListener
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from core.auth import VerifiedTokens
from core.config import Settings, get_settings
from core.db import create_client, init_database
from core.requests import RequestIds, configure_logging
from resolvers import health, webhooks
from resolvers.assets import asset_url, mount_ide_assets
from resolvers.cors import install_cors
from resolvers.graphql_app import GraphQLApp
from resolvers.limits import BodySizeLimit, RefusalPause, Refusals, RequestLimit
from resolvers.rest import campaigns as rest_campaigns
from resolvers.rest import contacts as rest_contacts
from resolvers.rest import conversations as rest_conversations
from resolvers.rest import exports as rest_exports
from resolvers.rest import suppressions as rest_suppressions
from resolvers.rest.envelope import install_error_handlers
from resolvers.root import schema
from services.conversations import outbound
from services.conversations.pending import PendingReplies
from services.conversations.simulated import provider_from
from services.organizations.request_limits import RequestLimits, utcnow
from services.sending.dispatcher import Dispatcher, config_from
from services.storage import idempotency, migrations

logger = logging.getLogger("campaigns")


async def _gather(*work: Coroutine[Any, Any, None]) -> None:
    await asyncio.gather(*work)


class App(FastAPI):
    """The FastAPI app with one thing in front of all of it: refusing callers whose request
    budget has no room left (`resolvers.limits.Refusals`), so a flood's refusals cost little."""

    refusals: Refusals | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.refusals is not None and await self.refusals.refused(scope, send):
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    event_listeners: Sequence[CommandListener] = (),
    clock: Callable[[], datetime] = utcnow,
) -> App:
    """Builds the app; the database connection opens in the lifespan, not at import.

    `event_listeners` are PyMongo monitoring listeners, for tests that count commands;
    `clock` is the time request budgets are counted in (tests move it).
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    request_limits = RequestLimits(
        settings.request_limit,
        settings.user_request_limit,
        largest_cost=settings.api_write_cost,
        clock=clock,
        sync_every=settings.api_limit_sync_seconds,
    )
    tokens = VerifiedTokens(settings)
    replies = PendingReplies(
        settings,
        workers=settings.inbound_workers,
        retry_after=timedelta(seconds=settings.inbound_retry_seconds),
        sweep_every=settings.inbound_sweep_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = create_client(settings, event_listeners=event_listeners)
        app.state.mongo_client = client
        try:
            await init_database(client, settings.mongodb_db)
            await migrations.migrate()
            # Start-up leaves many long-lived objects (schema, models); freezing them keeps
            # full collections from walking them on every large request (docs/performance.md).
            gc.collect()
            gc.freeze()
            purge = asyncio.create_task(
                idempotency.purge_forever(
                    retention=timedelta(seconds=settings.idempotency_retention_seconds),
                    every=timedelta(seconds=settings.idempotency_purge_every_seconds),
                )
            )
            sharing = asyncio.create_task(request_limits.run()) if request_limits else None
            stopping = asyncio.Event()
            applying = asyncio.create_task(replies.run(stopping))
            sending = None
            if settings.dispatch_in_process:
                dispatcher = Dispatcher(provider_from(settings), config_from(settings))
                sending = asyncio.create_task(
                    _gather(
                        dispatcher.run(stopping),
                        outbound.run_due(dispatcher.provider, stopping, dispatcher.rep_meter()),
                    )
                )
            try:
                yield
            finally:
                for task in (purge, sharing):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                stopping.set()
                # A reply being applied when the workers stop stays pending for a sweep.
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(applying, timeout=10)
                if sending is not None:
                    # A batch in flight finishes its chunk; a lease left behind expires.
                    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                        await asyncio.wait_for(sending, timeout=10)
        finally:
            await client.close()

    app = App(
        title="Campaign service",
        version="0.1.0",
        description="SMS campaigns for sales teams. GraphQL at /graphql; legacy REST under /api.",
        lifespan=lifespan,
        docs_url=None,  # served below from local assets; FastAPI's default page uses a CDN
        redoc_url=None,
    )
    app.state.settings = settings  # read by `resolvers.deps.app_settings`
    app.state.request_limits = request_limits
    app.state.pending_replies = replies  # read by the inbound webhook
    pause = RefusalPause(settings.api_refusal_pause_seconds, settings.api_refusal_pause_most)
    app.refusals = Refusals(request_limits, tokens, pause)
    # Apollo's BatchHttpLink sends a JSON array of operations; each gets its own answer, in
    # order. The schema is shared, so the last app built sets the limit (one per process).
    schema.config.batching_config = {"max_operations": settings.graphql_max_batch}
    install_error_handlers(app)
    graphql = GraphQLApp(schema, settings)
    # First: routes are matched in order, and /graphql takes most of the traffic. A plain
    # Starlette route, not FastAPI's router: Strawberry's FastAPI router solves four
    # dependencies on every request, for nothing this app uses (docs/performance.md).
    app.router.routes.insert(0, Route("/graphql", graphql, include_in_schema=False))
    app.router.routes.insert(1, WebSocketRoute("/graphql", graphql))
    app.include_router(health.router)
    # Before the REST routes: a burst of replies or delivery reports after a large campaign is
    # the busiest traffic, and each route passed on the way is a match tried per request.
    app.include_router(webhooks.router)
    app.include_router(rest_campaigns.router)
    app.include_router(rest_contacts.router)
    app.include_router(rest_conversations.router)
    app.include_router(rest_exports.router)
    app.include_router(rest_suppressions.router)
    mount_ide_assets(app)
    app.add_middleware(
        RequestLimit, settings=settings, limits=request_limits, tokens=tokens, pause=pause
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_cors(app, settings)
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

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        # This process's counters (sending, when it dispatches); workers serve theirs on
        # WORKER_METRICS_PORT.
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return HTMLResponse(
            '<p>Campaign service: <a href="/graphql">GraphQL IDE</a>, '
            '<a href="/docs">REST docs</a></p>'
        )

    return app
