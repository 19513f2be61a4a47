"""Request ids: one per request, on the response, in every log line, in masked errors.

A caller's `X-Request-ID` is kept when it is well formed (so a gateway's id runs through);
otherwise one is made. The id lives in a context variable for the request's task, which the
log filter and the error maskers read, so nothing has to pass it around.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.logging import AccessFormatter

HEADER = "X-Request-ID"
WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{8,128}")
current: ContextVar[str] = ContextVar("request_id", default="-")


def request_id() -> str:
    """Returns the id of the request being served ("-" outside one)."""
    return current.get()


class RequestIds:
    """Takes or makes the request's id and sets it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER.lower().encode(), b"").decode("latin-1")
        rid = given if WELL_FORMED.fullmatch(given) else uuid.uuid4().hex
        # Not reset afterwards: Starlette answers unhandled errors outside this middleware, and
        # that answer must still name the id. Each request runs in a task of its own context.
        current.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record, so the log format can show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id()
        return True


class RefusalLines(logging.Filter):
    """Drops uvicorn's access line of a 429: a flood past its request budget would write one
    line per refusal (thousands a second, and the writing was a third of what a refusal cost);
    the request limiter logs once per caller and window instead
    (`services.organizations.request_limits`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) == 5 and args[4] == 429)


def configure_logging(level: str) -> None:
    """Logs `time level [request id] logger: message` to stderr."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RefusalLines) for f in access.filters):
        access.addFilter(RefusalLines())
    # Uvicorn's access line is written while the response starts, inside the request's task,
    # so it can name the id too; uvicorn set its handlers up before building the app.
    for handler in logging.getLogger("uvicorn.access").handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
            handler.setFormatter(
                AccessFormatter(
                    "%(asctime)s %(levelname)s [%(request_id)s] uvicorn.access: %(client_addr)s - "
                    '"%(request_line)s" %(status_code)s',
                    use_colors=False,
                )
            )
