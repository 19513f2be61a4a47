"""The legacy envelope `{"success", "message", "data" | "errors"}` and the handlers that emit it.

Every answer under `/api` uses it — including 401s, 404s, body-size refusals and request
validation — so legacy callers never see FastAPI's default `{"detail": ...}` shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from core.db import unavailable
from core.errors import (
    AuthenticationError,
    Conflict,
    FieldError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServiceError,
    Unavailable,
)
from core.requests import HEADER, request_id
from services.inputs import field_errors_from

logger = logging.getLogger(__name__)


HTTP_STATUS: dict[type[ServiceError], int] = {
    AuthenticationError: 401,
    PermissionDenied: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    InvalidInput: 400,
    Conflict: 409,
    Unavailable: 503,
}
"""The HTTP status of each kind of service error (the nearest listed ancestor decides)."""

REST_NAMES = {"idempotencyKey": "Idempotency-Key"}
"""Inputs REST callers send somewhere other than the body, by the name they know them by."""


def http_status(exc: ServiceError) -> int:
    """Returns the status for a service error; an unlisted kind is a server error."""
    for kind in type(exc).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500


def error_body(message: str, errors: list[FieldError] | None = None) -> dict[str, Any]:
    """Builds the legacy error body; `errors[].field` is a dotted path into the request."""
    body: dict[str, Any] = {"success": False, "message": message}
    if errors is not None:
        body["errors"] = [
            {"field": REST_NAMES.get(e.dotted, e.dotted), "code": e.code, "message": e.message}
            for e in errors
        ]
    return body


def error_response(
    status: int,
    message: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Returns an envelope error response."""
    return JSONResponse(error_body(message, errors), status_code=status, headers=headers)


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    status = http_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, exc.message, exc.errors or None, headers)


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, "Invalid request", field_errors_from(exc.errors()))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail) if exc.detail else "Request failed"
    return error_response(exc.status_code, message, headers=dict(exc.headers or {}))


async def _database_down(_: Request, exc: Exception) -> JSONResponse:
    outage = unavailable(exc)
    assert outage is not None
    return error_response(503, outage.message, headers={"Retry-After": "5"})


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client left, or the body-size limit already answered 413 and cut the body short:
    # nobody reads this response, and it is not an error of ours.
    logger.debug("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=400)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    rid = request_id()  # this answer is sent outside the middleware that sets the header
    return error_response(
        500, f"Internal server error; quote request id {rid}", headers={HEADER: rid}
    )


def install_error_handlers(app: FastAPI) -> None:
    """Routes every failure through the envelope."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ConnectionFailure, _database_down)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
