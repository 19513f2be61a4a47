"""A request-body size limit enforced while reading, and each organization's (and user's)
request budget."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from functools import lru_cache

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.auth import Principal, VerifiedTokens
from core.config import Settings
from core.errors import AuthenticationError, FieldError
from core.requests import WELL_FORMED
from resolvers.deps import PRINCIPAL_STATE
from resolvers.rest.envelope import error_response
from services.organizations.request_limits import RequestLimits, Verdict

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


class RefusalPause:
    """Holds a refusal a moment before it is answered (`API_REFUSAL_PAUSE_SECONDS`, never past
    the moment the budget has room again).

    A client that ignores `Retry-After` and asks again at once otherwise gets its next 429 in a
    fraction of a millisecond, so a few connections keep a process's event loop busy answering
    them while other organizations' requests wait behind in the same loop. Held, each of its
    connections asks at most once per pause, like nginx's `limit_req` delaying excess requests.
    A held refusal is a sleeping coroutine; past `most` held at once (a flood of connections,
    not of requests), refusals are answered at once again.
    """

    def __init__(
        self,
        seconds: float,
        most: int,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.seconds = seconds
        self.most = most
        self.sleep = sleep
        self.held = 0

    async def hold(self, verdict: Verdict) -> None:
        """Waits the pause for this refusal, if it is on and there is room to hold one more."""
        pause = min(self.seconds, float(verdict.reset_seconds))
        if pause <= 0 or self.held >= self.most:
            return
        self.held += 1
        try:
            await self.sleep(pause)
        finally:
            self.held -= 1


class RequestLimit:
    """Answers 429 once an organization has spent its request budget (`/graphql`, `/api/*`).

    The caller's organization comes from its token; a request without a valid one passes
    through to be refused by the route (401) or served anonymously (the IDE); a verified one is
    kept in the request's state, so the route does not verify it again. Every limited
    answer carries the IETF draft's `RateLimit` and `RateLimit-Policy` headers; a refusal also
    `Retry-After`, and on `/graphql` the GraphQL shape with `extensions.code: RATE_LIMITED`.

    This counts what is admitted; a caller with no room left is mostly refused before the app
    by `Refusals`, without this middleware's work.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        limits: RequestLimits,
        tokens: VerifiedTokens,
        pause: RefusalPause,
    ) -> None:
        self.app = app
        self.settings = settings
        self.limits = limits
        self.tokens = tokens
        self.pause = pause

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            not self.limits
            or scope["type"] != "http"
            or scope.get("method") == "OPTIONS"
            or not (path.startswith("/api/") or path == "/graphql")
        ):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        principal = state.get(PRINCIPAL_STATE)
        if principal is None and PRINCIPAL_STATE in state:
            await self.app(scope, receive, send)  # its token was refused in front
            return
        if not isinstance(principal, Principal):
            headers = [v for k, v in scope["headers"] if k == b"authorization"]
            try:
                if len(headers) != 1:
                    raise AuthenticationError("no single Authorization header")
                principal = self.tokens.authenticate(headers[0].decode("latin-1"))
            except AuthenticationError:
                await self.app(scope, receive, send)
                return
            state[PRINCIPAL_STATE] = principal  # verified once
        cost, receive = await _cost(scope, receive, self.settings.api_write_cost)
        verdict = await self.limits.hit(
            str(principal.organization_id), str(principal.user_id), cost
        )
        advertised = rate_limit_headers(verdict)
        if not verdict.allowed:
            await self.pause.hold(verdict)
            await _refusal(path, verdict, advertised)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *advertised]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Refusals:
    """Answers 429 in front of the whole app, while a caller's budget has no room left for even
    a read: a flood's requests past its budget then cost a token lookup and a precomputed
    answer, not the app's middleware, routing, body reading and logging.

    Requests from browsers (with `Origin`) go the long way, through CORS to `RequestLimit`, so
    their refusals carry the CORS headers a page needs to read them. The answer is the same as
    `RequestLimit`'s, byte for byte, with the caller's `X-Request-ID` (or a new one).
    """

    def __init__(self, limits: RequestLimits, tokens: VerifiedTokens, pause: RefusalPause) -> None:
        self.limits = limits
        self.tokens = tokens
        self.pause = pause
        self._answers: dict[tuple[bool, int, int, int], tuple[list[tuple[bytes, bytes]], bytes]]
        self._answers = {}

    async def refused(self, scope: Scope, send: Send) -> bool:
        """Answers the request if its caller has no room left; tells whether it did."""
        if not self.limits or scope["type"] != "http" or scope.get("method") == "OPTIONS":
            return False
        path = scope.get("path", "")
        graphql = path == "/graphql"
        if not (graphql or path.startswith("/api/")):
            return False
        authorization = None
        given_id = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    return False  # refused by the route
                authorization = value
            elif name == b"origin":
                return False
            elif name == b"x-request-id":
                given_id = value
        if authorization is None:
            return False
        state = scope.setdefault("state", {})
        try:
            principal = self.tokens.authenticate(authorization.decode("latin-1"))
        except AuthenticationError:
            state[PRINCIPAL_STATE] = None  # refused: `RequestLimit` need not try again
            return False
        state[PRINCIPAL_STATE] = principal
        verdict = self.limits.refusal(str(principal.organization_id), str(principal.user_id))
        if verdict is None:
            return False
        headers, body = self._answer(graphql, verdict)
        await self.pause.hold(verdict)
        rid = given_id.decode("latin-1")
        if not WELL_FORMED.fullmatch(rid):
            rid = uuid.uuid4().hex
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [*headers, (b"x-request-id", rid.encode("latin-1"))],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return True

    def _answer(self, graphql: bool, verdict: Verdict) -> tuple[list[tuple[bytes, bytes]], bytes]:
        key = (graphql, verdict.limit, verdict.window_seconds, verdict.reset_seconds)
        answer = self._answers.get(key)
        if answer is None:
            if len(self._answers) >= 1024:
                self._answers.clear()
            path = "/graphql" if graphql else "/api/"
            response = _refusal(path, verdict, rate_limit_headers(verdict))
            answer = (list(response.raw_headers), bytes(response.body))
            self._answers[key] = answer
        return answer


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _cost(scope: Scope, receive: Receive, write_cost: int) -> tuple[int, Receive]:
    """What the request costs: a write `write_cost`, a read 1. A GraphQL POST is a write when
    it runs a mutation, which only its body says: the body (already bounded by
    `BodySizeLimit`) is read here and handed on unchanged."""
    method = str(scope.get("method", "GET"))
    if scope.get("path") != "/graphql":
        return (write_cost if method in WRITES else 1), receive
    if method != "POST":
        return 1, receive  # persisted queries over GET: reads only
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return (write_cost if _mutates(body) else 1), replay


def _mutates(body: bytes) -> bool:
    if b"mutation" not in body and b"\\u" not in body:
        return False  # a mutation names itself (a JSON escape could hide the word: parsed)
    try:
        payload = json.loads(body)
    except ValueError:
        return False  # the endpoint answers it
    operations = payload if isinstance(payload, list) else [payload]
    return any(
        isinstance(op, dict)
        and isinstance(op.get("query"), str)
        and is_mutation(op["query"], op.get("operationName"))
        for op in operations
    )


@lru_cache(maxsize=2048)
def is_mutation(query: str, operation_name: object) -> bool:
    """Whether the operation a GraphQL request runs is a mutation (cached by text)."""
    try:
        document = parse(query)
    except GraphQLError:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = next(
        (
            op
            for op in operations
            if operation_name is None or (op.name is not None and op.name.value == operation_name)
        ),
        None,
    )
    return chosen is not None and chosen.operation is OperationType.MUTATION


def rate_limit_headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    """The `RateLimit` and `RateLimit-Policy` headers (draft-ietf-httpapi-ratelimit-headers-07)."""
    state = f"limit={verdict.limit}, remaining={verdict.remaining}, reset={verdict.reset_seconds}"
    policy = f"{verdict.limit};w={verdict.window_seconds}"
    return [(b"ratelimit", state.encode()), (b"ratelimit-policy", policy.encode())]


def _refusal(path: str, verdict: Verdict, advertised: list[tuple[bytes, bytes]]) -> Response:
    message = (
        f"Your organization made more than {verdict.limit} requests in "
        f"{verdict.window_seconds} s; retry in {verdict.reset_seconds} s"
    )
    headers = {k.decode(): v.decode() for k, v in advertised}
    headers["Retry-After"] = str(verdict.reset_seconds)
    if path == "/graphql":
        extensions = {"code": "RATE_LIMITED", "retryAfter": verdict.reset_seconds}
        body = {"errors": [{"message": message, "extensions": extensions}]}
        return JSONResponse(body, status_code=429, headers=headers)
    error = FieldError((), "RATE_LIMITED", message)
    return error_response(429, message, [error], headers=headers)
