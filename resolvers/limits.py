"""A request-body size limit enforced while reading, and request ids on every answer."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import FieldError
from resolvers.rest.envelope import error_response

HTTP_CODES = {
    400: "BAD_REQUEST",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    503: "SERVICE_UNAVAILABLE",
}


def graphql_error_response(
    status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A refusal of the whole HTTP request in GraphQL's shape: clients read `errors`, and an
    Apollo link finds `extensions.code` there, never the legacy envelope or plain text."""
    extensions = {"code": code or HTTP_CODES.get(status, f"HTTP_{status}")}
    body = {"errors": [{"message": message, "extensions": extensions}]}
    return JSONResponse(body, status_code=status, headers=headers)


class BodySizeLimit:
    """Answers 413 in the legacy envelope once a body passes `max_bytes`.

    A declared `Content-Length` over the limit is refused before reading. Chunked bodies have
    none, so the stream is also counted as it arrives: past the limit the 413 is sent at once,
    the app is told the client went away, and whatever it answers is dropped.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"Request body is larger than the {self.max_bytes} byte limit"
        response: Response
        if str(scope.get("path", "")).startswith("/graphql"):
            # GraphQL clients read `errors`, never the legacy envelope.
            response = graphql_error_response(413, message, headers={"Connection": "close"})
        else:
            response = error_response(
                413,
                message,
                [FieldError((), "PAYLOAD_TOO_LARGE", f"Send at most {self.max_bytes} bytes")],
                headers={"Connection": "close"},
            )
        await response(scope, receive, send)
