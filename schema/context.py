"""The per-request GraphQL context: who is calling, their organization scope and loaders.

Built per request by `resolvers.context.get_context`; types and resolvers read it through `Info`.
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.fastapi import BaseContext
from strawberry.permission import BasePermission

from core.auth import Principal, authenticate
from core.config import Settings
from core.errors import AuthenticationError
from schema.loaders import Loaders
from services.storage.tenancy import Tenant

MAX_CREATIONS = 1
"""Campaign creations per request: each can write 50,000 recipients."""


class Context(BaseContext):
    """Holds the verified principal, or why there is none; fields needing one ask for it."""

    def __init__(
        self,
        settings: Settings,
        principal: Principal | None,
        auth_error: AuthenticationError | None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._principal = principal
        self._auth_error = auth_error
        self._tenant: Tenant | None = None
        self._loaders: Loaders | None = None
        self._creations = 0
        self.connection_params: dict[str, object] | None = None
        """A websocket's `connection_init` payload (set by Strawberry)."""

    def sign_in(self, header: str | None) -> None:
        """Verifies a websocket's token from its `connection_init` payload, with the same rules
        as an HTTP request's header; raises `AuthenticationError` when it cannot."""
        self._principal = authenticate(header, self.settings)
        self._auth_error = None
        self._tenant = None
        self._loaders = None

    def claim_creation(self) -> None:
        """Counts a campaign creation against the request's limit, across a whole batch (its
        operations share this context); one over it is refused before anything is written."""
        self._creations += 1
        if self._creations > MAX_CREATIONS:
            raise GraphQLError(
                f"A request may create at most {MAX_CREATIONS} campaign; send the others "
                "as separate requests",
                extensions={"code": "TOO_MANY_CREATIONS"},
            )

    @property
    def anonymous(self) -> bool:
        """Whether the request came without a verified token (it gets smaller budgets)."""
        return self._principal is None

    @property
    def tenant(self) -> Tenant:
        """Returns the caller's organization scope (raises `UNAUTHENTICATED` without one)."""
        if self._tenant is None:
            self._tenant = Tenant(self.principal)
        return self._tenant

    @property
    def loaders(self) -> Loaders:
        """Returns this request's batch loaders, made on first use."""
        if self._loaders is None:
            self._loaders = Loaders(self.tenant, self.settings)
        return self._loaders

    @property
    def principal(self) -> Principal:
        """Returns the caller, or raises an `UNAUTHENTICATED` GraphQL error."""
        if self._principal is None:
            error = self._auth_error or AuthenticationError("Authentication required")
            raise GraphQLError(error.message, extensions={"code": error.code})
        return self._principal


Info = strawberry.Info[Context, None]


class IsAuthenticated(BasePermission):
    """Refuses a field to callers without a verified token, with `extensions.code`."""

    message = "Authentication required"
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: object, info: Info, **kwargs: object) -> bool:
        _ = info.context.principal  # raises with the precise reason
        return True
