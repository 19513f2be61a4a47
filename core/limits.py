"""A request-body size limit enforced while reading, before anything is parsed."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import FieldError


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
            await self._refuse(send)
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
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    @property
    def _message(self) -> str:
        return f"Request body is larger than the {self.max_bytes} byte limit"

    @property
    def _field_error(self) -> FieldError:
        return FieldError((), "PAYLOAD_TOO_LARGE", f"Send at most {self.max_bytes} bytes")

    async def _refuse(self, send: Send) -> None:
        e = self._field_error
        body = json.dumps(
            {
                "success": False,
                "message": self._message,
                "errors": [{"field": e.dotted, "code": e.code, "message": e.message}],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
