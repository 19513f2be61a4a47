"""The GraphQL endpoint: Strawberry's ASGI app with this service's transport rules.

A plain ASGI app on a Starlette route rather than `strawberry.fastapi.GraphQLRouter`: the router
resolves its context through FastAPI dependencies, four of them solved again on every request
(measured in docs/performance.md), and this app needs none of them.
"""

from __future__ import annotations

import json

from cross_web import AsyncHTTPRequestAdapter
from cross_web import HTTPException as GraphQLHTTPError
from graphql import GraphQLError, OperationType, get_operation_ast
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from core.config import Settings
from core.errors import AuthenticationError
from resolvers.context import get_context
from resolvers.cors import origin_allowed
from resolvers.dev_tokens import dev_token_for
from resolvers.ide import render_graphiql
from resolvers.limits import graphql_error_response
from resolvers.persisted import PersistedQueries
from resolvers.root import parse_once
from schema.context import Context


class GraphQLApp(GraphQL[Context, None]):
    """Serves a self-hosted GraphiQL (the stock page loads scripts from a public CDN), answers
    every refusal in GraphQL's shape, and speaks automatic persisted queries."""

    def __init__(self, schema: Schema, settings: Settings) -> None:
        super().__init__(schema, multipart_uploads_enabled=False)
        self.settings = settings
        self.persisted = PersistedQueries(settings.graphql_persisted_queries)

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        """Pages of other sites may subscribe when their origin is on the CORS allow-list."""
        return origin_allowed(origin, self.settings)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        context = await get_context(request)
        context.request = request
        context.response = response  # type: ignore[assignment]
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        # Browsers cannot set headers on a websocket, so the token travels in `connection_init`
        # (`{"Authorization": "Bearer ..."}`), checked with the HTTP rules; without a valid
        # one the socket is closed (4403) before any subscription starts.
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if header is None and context.request is not None:
            header = context.request.headers.get("authorization")
        try:
            context.sign_in(header if isinstance(header, str) else None)
        except AuthenticationError as exc:
            raise ConnectionRejectionError({"message": exc.message, "code": exc.code}) from None
        unset: UnsetType = UNSET
        return unset

    async def run(  # type: ignore[override]  # one body for both of the base's overloads
        self, request: Request | WebSocket, context: Context = UNSET, root_value: None = UNSET
    ) -> Response | WebSocket:
        # Strawberry answers its own refusals (bad JSON, too many operations) in plain text;
        # GraphQL clients read `errors`.
        try:
            return await super().run(request, context=context, root_value=root_value)
        except MethodNotAllowed as exc:
            return graphql_error_response(exc.status_code, exc.reason, headers={"Allow": "POST"})
        except GraphQLHTTPError as exc:
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
        # Only JSON bodies are read: a form, text or multipart post is what a browser sends
        # cross-site without a preflight.
        if request.method != "GET" and not _is_json(request.content_type):
            raise GraphQLHTTPError(415, "Send application/json (or GET with query parameters)")
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
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # Every operation, batched or not, passes here: persisted queries are filled in first.
        refusal = self.persisted.resolve(request_data)
        if refusal is not None:
            return ExecutionResult(data=None, errors=[refusal])
        try:
            return await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        except GraphQLHTTPError:
            # Over GET Strawberry runs queries only; a mutation there is refused as the method
            # it needs (GraphQL over HTTP: 405, and say which method to use).
            if request_adapter.method == "GET" and _operation_type(request_data) is MUTATION:
                raise MethodNotAllowed(
                    405, "Mutations are not run over GET; send them with POST"
                ) from None
            raise

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        token = dev_token_for(request, self.settings)
        # The page may carry a token: never let a shared cache keep it.
        headers = {"Cache-Control": "no-store"} if token else None
        page = render_graphiql(str(request.url.path), dev_token=token)
        return HTMLResponse(page, headers=headers)


class MethodNotAllowed(GraphQLHTTPError):
    """A refusal that names the method to use instead (`Allow: POST`)."""


MUTATION = OperationType.MUTATION


def _is_json(content_type: str | None) -> bool:
    return "application/json" in (content_type or "").split(";", 1)[0].strip().lower()


def _operation_type(request_data: GraphQLRequestData) -> OperationType | None:
    """The type of the operation a request names, read from its document (None when the
    document does not parse or names no such operation)."""
    if request_data.query is None:
        return None
    try:
        document = parse_once(request_data.query)
    except GraphQLError:
        return None
    operation = get_operation_ast(document, request_data.operation_name)
    return operation.operation if operation is not None else None
